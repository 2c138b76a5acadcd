"""Make book/data/training_speed.csv, the cached sweep of the training-speed chapter.

Every hidden-layer activation of the chapter trains the same perceptron on scikit-learn's
digits (64 → 4 × 128 → 10) with SGD + momentum 0.9, batches of 32, for 10 epochs, over a
grid of learning rates (``GRIDS``: wide enough that each activation's fastest one is
inside it, a factor of about 3 apart) and five seeds (0 to 4, ``role = select``); ReLU,
tanh and sigmoid are trained a second time with PyTorch's default initialisation.

The fastest learning rate is then chosen exactly as the chapter does (``best_lr``: every
seed reaches the threshold and none diverges or collapses) on those five seeds, and ReLU
(He) and tanh (Xavier) are trained again at the chosen rates with five new seeds (5 to 9,
``role = held_out``): numbers measured on seeds that took no part in the choice, free of
its selection bias.

One row per run. ``errors`` is the number of misclassified training examples (out of
1348) measured 8 times per epoch, from before the first step to the end (81 values);
``errors_first_epoch`` the same after every one of the 43 steps of the first epoch (44
values, from a second run of that epoch: the same computation, evaluated more often);
``final_test_error`` the test error (449 images) at the end. A run whose loss became NaN
or infinite has ``diverged = 1`` and "nan" after that point.

    nice .venv/bin/python book/data/make_training_speed.py      # about 9 minutes on 1 core (535 s CPU)

The notebook book/experiments/training_speed.ipynb reads the CSV and re-runs two of
these runs to check the cache against what this code computes.
"""

import csv
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from actlib import analysis

OUT = Path(__file__).with_name("training_speed.csv")
LOW, MID, HIGH = [0.003, 0.01, 0.03, 0.1], [0.01, 0.03, 0.1], [0.01, 0.03, 0.1, 0.3, 1.0]
# (activation, init): learning rates. Each activation gets the initialisation it is
# normally paired with; ReLU, tanh and sigmoid also PyTorch's default.
GRIDS = {
    ("relu", "he"): LOW,
    ("tanh", "xavier"): [0.003, *HIGH],
    ("sigmoid", "xavier"): HIGH,
    ("leaky_relu", "he"): LOW,
    ("elu", "he"): LOW,
    ("selu", "lecun"): [*LOW, 0.3],
    ("softplus", "he"): MID,
    ("silu", "he"): MID,
    ("gelu", "he"): LOW,
    ("relu", "default"): [0.01, 0.03, 0.1, 0.3],
    ("tanh", "default"): HIGH,
    ("sigmoid", "default"): HIGH[1:],
}
SELECT_SEEDS, HELD_OUT_SEEDS = range(5), range(5, 10)
HELD_OUT_CONFIGS = [("relu", "he"), ("tanh", "xavier")]
THRESHOLDS = (0.25, 0.01)
EPOCHS, EVALS_PER_EPOCH, BATCH, MOMENTUM = 10, 8, 32, 0.9
WIDTH, DEPTH = 128, 4
FIELDS = [
    "activation", "init", "lr", "seed", "role", "diverged", "final_test_error",
    "errors_first_epoch", "errors",
]  # fmt: skip


def run(name, init, lr, seed, x, y, epochs=EPOCHS, evals_per_epoch=EVALS_PER_EPOCH):
    """One training run; the same call the notebook makes. Returns (model, curve)."""
    model = analysis.build_mlp(64, WIDTH, DEPTH, 10, name, init=init, seed=seed)
    curve = analysis.train(
        model, x, y, epochs=epochs, lr=lr, batch_size=BATCH, momentum=MOMENTUM, seed=seed,
        evals_per_epoch=evals_per_epoch,
    )  # fmt: skip
    return model, curve


def steps_per_epoch(n_train):
    return math.ceil(n_train / BATCH)


def merged_curve(first_epoch, errors, n_train):
    """One TrainingCurve from the two stored series: every step of the first epoch, then
    every 1/8 epoch. Arguments are lists of misclassified counts (NaN after divergence)."""
    steps = len(first_epoch) - 1
    epoch = [k / steps for k in range(steps + 1)]
    epoch += [k / EVALS_PER_EPOCH for k in range(EVALS_PER_EPOCH + 1, len(errors))]
    counts = list(first_epoch) + list(errors[EVALS_PER_EPOCH + 1 :])
    return analysis.TrainingCurve(epoch=epoch, error=[c / n_train for c in counts])


def trains(row, n_train):
    """A run trains when it neither diverges nor collapses (ends at 50% training error or more)."""
    last = row["errors"].split()[-1]
    return row["diverged"] == "0" and last != "nan" and float(last) / n_train < 0.5


def best_lr(rows_by_lr, threshold, n_train):
    """The chapter's choice: among the learning rates at which every seed reaches the
    threshold and trains, the one with the fewest median epochs to reach it (ties: the lower
    mean, then the lower rate). ``rows_by_lr`` maps lr to the rows of its seeds. None if no
    lr qualifies."""
    candidates = []
    for lr, rows in rows_by_lr.items():
        reached = [analysis.epochs_to_reach(curve_of(r, n_train), threshold) for r in rows]
        if None not in reached and all(trains(r, n_train) for r in rows):
            candidates.append((statistics.median(reached), statistics.mean(reached), lr))
    return min(candidates)[2] if candidates else None


def one_row(name, init, lr, seed, role, data):
    x_train, y_train, x_test, y_test = data
    n_train = len(x_train)
    model, curve = run(name, init, lr, seed, x_train, y_train)
    _, first = run(name, init, lr, seed, x_train, y_train, epochs=1,
                   evals_per_epoch=steps_per_epoch(n_train))  # fmt: skip

    def counts(errors):
        return ["nan" if math.isnan(e) else str(round(e * n_train)) for e in errors]

    # The two runs are the same computation: they agree where both evaluate (end of epoch 1).
    assert counts(first.error)[-1] == counts(curve.error)[EVALS_PER_EPOCH]
    test_error = math.nan if curve.diverged else analysis.evaluate(model, x_test, y_test)[1]
    row = {
        "activation": name, "init": init, "lr": lr, "seed": seed, "role": role,
        "diverged": int(curve.diverged),
        "final_test_error": "nan" if math.isnan(test_error) else f"{test_error:.4f}",
        "errors_first_epoch": " ".join(counts(first.error)),
        "errors": " ".join(counts(curve.error)),
    }  # fmt: skip
    return row


def curve_of(row, n_train):
    return merged_curve(
        [float(v) for v in row["errors_first_epoch"].split()],
        [float(v) for v in row["errors"].split()],
        n_train,
    )


def main():
    torch.set_num_threads(1)
    data = analysis.load_digits_tensors()
    n_train = len(data[0])
    start = time.time()
    rows = []
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for (name, init), grid in GRIDS.items():
            for lr in grid:
                for seed in SELECT_SEEDS:
                    rows.append(one_row(name, init, lr, seed, "select", data))
                    writer.writerow(rows[-1])
                handle.flush()
                print(f"{name:10s} {init:7s} lr {lr:<6g} {time.time() - start:6.0f} s", flush=True)
        for name, init in HELD_OUT_CONFIGS:
            by_lr = {
                lr: [r for r in rows if (r["activation"], r["init"], r["lr"]) == (name, init, lr)]
                for lr in GRIDS[name, init]
            }  # fmt: skip
            chosen = sorted({best_lr(by_lr, t, n_train) for t in THRESHOLDS} - {None})
            for lr in chosen:
                for seed in HELD_OUT_SEEDS:
                    writer.writerow(one_row(name, init, lr, seed, "held_out", data))
                handle.flush()
                print(f"{name:10s} {init:7s} lr {lr:<6g} held out {time.time() - start:6.0f} s",
                      flush=True)  # fmt: skip
    print(f"wrote {OUT} in {time.time() - start:.0f} s ({time.process_time():.0f} s CPU)",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
