"""Make book/data/training_speed.csv, the cached sweep of the training-speed chapter.

Every hidden-layer activation of the chapter trains the same perceptron on scikit-learn's
digits (64 → 4 × 128 → 10) with SGD + momentum 0.9, batches of 32, for 20 epochs, at
four learning rates and five seeds each; ReLU, tanh and sigmoid are trained a second
time with PyTorch's default initialisation. One row per run; the column ``errors`` is
the number of misclassified training examples (out of 1348) measured 8 times per epoch,
from before the first step to the end, space-separated.

    .venv/bin/python book/data/make_training_speed.py      # 10 to 20 minutes on 1 core

The notebook book/experiments/training_speed.ipynb reads the CSV and re-runs two of
these runs to check that the cache is what this code computes.
"""

import csv
import math
import sys
import time
from pathlib import Path

import torch

from actlib import analysis

OUT = Path(__file__).with_name("training_speed.csv")
ACTIVATIONS = ["relu", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "softplus", "silu", "gelu"]
PAIRED_INIT = {"sigmoid": "xavier", "tanh": "xavier", "selu": "lecun"}  # the others: "he"
DEFAULT_INIT_ALSO = ["relu", "tanh", "sigmoid"]
LEARNING_RATES = [0.003, 0.01, 0.03, 0.1]
SEEDS = range(5)
EPOCHS, EVALS_PER_EPOCH, BATCH, MOMENTUM = 20, 8, 32, 0.9
WIDTH, DEPTH = 128, 4
FIELDS = ["activation", "init", "lr", "seed", "diverged", "final_test_error", "errors"]


def configurations():
    for name in ACTIVATIONS:
        yield name, PAIRED_INIT.get(name, "he")
    for name in DEFAULT_INIT_ALSO:
        yield name, "default"


def run(name, init, lr, seed, data):
    """One training run; the same call the notebook makes."""
    x_train, y_train, x_test, y_test = data
    model = analysis.build_mlp(64, WIDTH, DEPTH, 10, name, init=init, seed=seed)
    return analysis.train(
        model, x_train, y_train, epochs=EPOCHS, lr=lr, batch_size=BATCH, momentum=MOMENTUM,
        seed=seed, evals_per_epoch=EVALS_PER_EPOCH, x_test=x_test, y_test=y_test,
    )  # fmt: skip


def main():
    torch.set_num_threads(1)  # as in the notebook: the same bits on every machine
    data = analysis.load_digits_tensors()
    n_train = len(data[0])
    start = time.time()
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for name, init in configurations():
            for lr in LEARNING_RATES:
                for seed in SEEDS:
                    curve = run(name, init, lr, seed, data)
                    errors = [
                        "nan" if math.isnan(e) else str(round(e * n_train)) for e in curve.error
                    ]
                    final_test = curve.test_error[-1]
                    writer.writerow(
                        {
                            "activation": name,
                            "init": init,
                            "lr": lr,
                            "seed": seed,
                            "diverged": int(curve.diverged),
                            "final_test_error": "nan"
                            if math.isnan(final_test)
                            else f"{final_test:.4f}",
                            "errors": " ".join(errors),
                        }
                    )
                handle.flush()
                print(f"{name:10s} {init:7s} lr {lr:<6g} {time.time() - start:6.0f} s", flush=True)
    print(f"wrote {OUT} in {time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
