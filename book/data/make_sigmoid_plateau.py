"""Make the cached training curves of the sigmoid chapter (book/squashing/sigmoid.ipynb).

A perceptron 64 → 4 × 64 → 10 with PyTorch's default initialisation
(``actlib.analysis.build_mlp``) trains on scikit-learn's digits with SGD + momentum 0.9,
learning rate 0.1, batches of 32 (``actlib.analysis.train``), for 90 epochs and eight
seeds, with two activations that have the same derivative:

- ``sigmoid``: σ(z), outputs in (0, 1);
- ``sigmoid_centred``: σ(z) − ½, the same curve moved down to mean zero (σ′ unchanged).

The only difference between the two is the mean of the hidden layers' outputs, so the
comparison isolates what the sigmoid's positive mean does to training, as Glorot and
Bengio (2010) described it: the top hidden layer is pushed to its lower asymptote 0.

One row per run and evaluation (before the first step and after every epoch, 91 per
run): ``activation``, ``seed``, ``epoch``, the training-set ``loss`` and ``error``, the
mean output ``mean_1`` … ``mean_4`` of each hidden layer on the whole training set (input
side first), and for the top hidden layer the root-mean-square slope ``slope_rms_4``
(√mean f′(z)²) and the fraction ``saturated_4`` of its entries with f′(z) < 0.01.

    nice .venv/bin/python book/data/make_sigmoid_plateau.py     # about 10 minutes (one thread, busy 2-core machine)
"""

import csv
import time
from pathlib import Path

import torch
from torch import nn

import actlib
from actlib import analysis

OUT = Path(__file__).with_name("sigmoid_plateau.csv")
SEEDS = range(8)
EPOCHS = 90
DEPTH, WIDTH, LR, BATCH = 4, 64, 0.1, 32


class CentredSigmoid(nn.Module):
    """σ(z) − ½: the sigmoid moved down to mean zero, with the sigmoid's derivative."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return actlib.sigmoid(z) - 0.5


ACTIVATIONS = {"sigmoid": "sigmoid", "sigmoid_centred": CentredSigmoid}


def main() -> None:
    torch.set_num_threads(1)
    x, y, _, _ = analysis.load_digits_tensors()
    header = ["activation", "seed", "epoch", "loss", "error"]
    header += [f"mean_{layer}" for layer in range(1, DEPTH + 1)]
    header += [f"slope_rms_{DEPTH}", f"saturated_{DEPTH}"]
    rows = []
    start = time.time()
    for name, activation in ACTIVATIONS.items():
        for seed in SEEDS:
            model = analysis.build_mlp(64, WIDTH, DEPTH, 10, activation, seed=seed)
            stats = []
            curve = analysis.train(
                model, x, y, epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed,
                on_eval=lambda m, _epoch, stats=stats: stats.append(
                    analysis.activation_statistics(m, x)),
            )
            for epoch, loss, error, layers in zip(
                curve.epoch, curve.loss, curve.error, stats, strict=True
            ):
                top = layers[-1]
                rows.append(
                    [name, seed, f"{epoch:g}", f"{loss:.6g}", f"{error:.6g}"]
                    + [f"{s.mean:.6g}" for s in layers]
                    + [f"{top.derivative_rms:.6g}", f"{top.saturated:.6g}"]
                )
            print(f"{name} seed {seed}: final error {curve.error[-1]:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)
    with OUT.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
