"""Make book/data/dead_units.csv, the cached learning-rate sweep of the dead-units chapter.

ReLU, leaky ReLU, ELU and GELU each train the same perceptron on scikit-learn's digits
(64 → 4 × 128 → 10, He initialisation) with SGD + momentum 0.9, batches of 32, for 5
epochs, at five learning rates and five seeds. After every epoch the dead units of each
layer are recorded with ``actlib.analysis.dead_units`` on the whole training set. One
row per run; per-layer columns hold four space-separated values, input side first:

- ``dead_init``, ``dead_final``: fraction of units with f'(z) = 0 on every training
  example, before training and after the last epoch;
- ``nearly_dead_final``: the same with |f'(z)| <= 0.01 (a leaky ReLU that is never on);
- ``ever_dead``: units dead after at least one epoch (as a fraction of the layer);
- ``revived``: units dead after some epoch but alive at the end.

Diverged runs (the loss became NaN or infinite) have no unit statistics ("nan").

    .venv/bin/python book/data/make_dead_units.py      # 2 to 4 minutes on 1 core
"""

import csv
import math
import time
from pathlib import Path

import torch

from actlib import analysis

OUT = Path(__file__).with_name("dead_units.csv")
ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu"]
LEARNING_RATES = [0.01, 0.03, 0.05, 0.1, 0.2]
SEEDS = range(5)
EPOCHS, BATCH, MOMENTUM, WIDTH, DEPTH = 5, 32, 0.9, 128, 4
NEARLY_DEAD_TOL = 0.01
FIELDS = [
    "activation", "lr", "seed", "diverged", "final_train_error",
    "dead_init", "dead_final", "nearly_dead_final", "ever_dead", "revived",
]  # fmt: skip


def run(name, lr, seed, x, y, on_eval=None):
    """One training run; the same call the notebook makes."""
    model = analysis.build_mlp(64, WIDTH, DEPTH, 10, name, init="he", seed=seed)
    curve = analysis.train(
        model, x, y, epochs=EPOCHS, lr=lr, batch_size=BATCH, momentum=MOMENTUM, seed=seed,
        on_eval=on_eval,
    )  # fmt: skip
    return model, curve


def fmt(values):
    return " ".join(f"{v:.4f}" for v in values)


def main():
    torch.set_num_threads(1)  # as in the notebook: the same bits on every machine
    x, y, _, _ = analysis.load_digits_tensors()
    start = time.time()
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for name in ACTIVATIONS:
            for lr in LEARNING_RATES:
                for seed in SEEDS:
                    masks = []  # dead masks after every epoch (index 0: before training)

                    def record(model, epoch, masks=masks):
                        masks.append(analysis.dead_units(model, x))

                    model, curve = run(name, lr, seed, x, y, on_eval=record)
                    row = {"activation": name, "lr": lr, "seed": seed}
                    row["dead_init"] = fmt(m.float().mean().item() for m in masks[0])
                    if curve.diverged:
                        row.update(diverged=1, final_train_error="nan")
                        for key in ("dead_final", "nearly_dead_final", "ever_dead", "revived"):
                            row[key] = "nan"
                    else:
                        final = masks[-1]
                        ever = [
                            torch.stack([m[layer] for m in masks[1:]]).any(dim=0)
                            for layer in range(DEPTH)
                        ]
                        nearly = analysis.dead_unit_fraction(model, x, tol=NEARLY_DEAD_TOL)
                        row.update(
                            diverged=0,
                            final_train_error=f"{curve.error[-1]:.4f}",
                            dead_final=fmt(m.float().mean().item() for m in final),
                            nearly_dead_final=fmt(nearly),
                            ever_dead=fmt(e.float().mean().item() for e in ever),
                            revived=fmt(
                                (e & ~f).float().mean().item()
                                for e, f in zip(ever, final, strict=True)
                            ),
                        )
                    assert not any(isinstance(v, float) and math.isnan(v) for v in row.values())
                    writer.writerow(row)
                handle.flush()
                print(f"{name:10s} lr {lr:<5g} {time.time() - start:5.0f} s", flush=True)


if __name__ == "__main__":
    main()
