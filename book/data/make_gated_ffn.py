"""Make book/data/gated_ffn.csv: gated against two-matrix feed-forward blocks at equal size.

The model of the chapter "Gated linear units", on scikit-learn's digits (8×8 images,
1348 for training, 449 for testing, :func:`actlib.analysis.load_digits_tensors`):

    x → Linear(64 → 48) → 2 × [x + FFN(LayerNorm(x))] → LayerNorm → Linear(48 → 10)

with the FFN of each block one of (``VARIANTS``)

* ``relu``, ``gelu``: :class:`actlib.FeedForward` (48 → 192 → 48), 2 · 48 · 192 = 18432 weights;
* ``glu``, ``reglu``, ``geglu``, ``swiglu``: :class:`actlib.GatedFeedForward` with the gate
  sigmoid, relu, gelu or silu (48 → 2 × 128 → 48), 3 · 48 · 128 = 18432 weights,

so every model has the same number of parameters (d_model = 48 is divisible by 3). No
biases in the FFNs, as in Shazeer 2020. The linear layers are initialised as nn.Linear
does, U(−1/√fan_in, 1/√fan_in), but drawn from the "parameters" stream of the seed; the
minibatches come from its "order" stream (:func:`actlib.analysis.train`). Adam, learning
rate ``LR``, batches of ``BATCH``, ``EPOCHS`` epochs of 22 steps (660 steps), seeds 0 to 9.

One row per variant, seed and logged step (before the first step and every 11 steps):
``train_loss`` and ``train_error`` on the whole training set, ``test_error`` on the test
set; the last row of a run also has ``test_loss`` (mean cross-entropy on the test set),
elsewhere empty.

    nice .venv/bin/python book/data/make_gated_ffn.py      # 150 s CPU on 1 core (7 min wall on a busy 2-core machine)

The notebook book/modern/gated_linear_units.ipynb imports :func:`build_model` from here
(to count the parameters) and reads the CSV.
"""

import csv
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

import actlib
from actlib import analysis

OUT = Path(__file__).with_name("gated_ffn.csv")
D_MODEL, BLOCKS, LR, BATCH, EPOCHS, EVALS_PER_EPOCH = 48, 2, 1e-3, 64, 30, 2
SEEDS = range(10)
#: variant name → (block kind, activation)
VARIANTS = {
    "relu": ("ffn", "relu"),
    "gelu": ("ffn", "gelu"),
    "glu": ("gated", "sigmoid"),
    "reglu": ("gated", "relu"),
    "geglu": ("gated", "gelu"),
    "swiglu": ("gated", "silu"),
}


class Block(nn.Module):
    """Pre-norm residual block x + FFN(LayerNorm(x))."""

    def __init__(self, ffn: nn.Module, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.ffn = ffn

    def forward(self, x):
        return x + self.ffn(self.norm(x))


def feed_forward(variant: str, d_model: int = D_MODEL) -> nn.Module:
    kind, activation = VARIANTS[variant]
    if kind == "ffn":
        return actlib.FeedForward(d_model, activation=activation)
    return actlib.GatedFeedForward(d_model, activation=activation)


def build_model(variant: str, seed: int, d_model: int = D_MODEL, blocks: int = BLOCKS,
                device=None) -> nn.Sequential:  # fmt: skip
    """The digits classifier with ``blocks`` residual blocks of FFN ``variant``."""
    model = nn.Sequential(
        nn.Linear(64, d_model),
        *[Block(feed_forward(variant, d_model), d_model) for _ in range(blocks)],
        nn.LayerNorm(d_model),
        nn.Linear(d_model, 10),
    )
    generator = actlib.device.stream_generator("parameters", seed)
    with torch.no_grad():
        for layer in analysis.linear_layers(model):
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            if layer.bias is not None:
                layer.bias.uniform_(-bound, bound, generator=generator)
    return model.to(device)


def ffn_weights(model: nn.Module) -> int:
    """Number of parameters in the feed-forward blocks of ``model``."""
    return sum(p.numel() for m in model.modules()
               if isinstance(m, (actlib.FeedForward, actlib.GatedFeedForward))
               for p in m.parameters())  # fmt: skip


def run(variant: str, seed: int, data) -> list[dict]:
    x, y, x_test, y_test = data
    model = build_model(variant, seed)
    curve = analysis.train(model, x, y, epochs=EPOCHS, lr=LR, batch_size=BATCH,
                           optimizer="adam", seed=seed, evals_per_epoch=EVALS_PER_EPOCH,
                           x_test=x_test, y_test=y_test)  # fmt: skip
    model.eval()
    test_loss, _ = analysis.evaluate(model, x_test, y_test)
    steps_per_epoch = math.ceil(len(x) / BATCH)
    rows = []
    for i, (epoch, loss, error, test_error) in enumerate(
        zip(curve.epoch, curve.loss, curve.error, curve.test_error, strict=True)
    ):
        last = i == len(curve.epoch) - 1
        rows.append({
            "variant": variant, "seed": seed, "step": round(epoch * steps_per_epoch),
            "train_loss": f"{loss:.6g}", "train_error": f"{error:.6g}",
            "test_error": f"{test_error:.6g}", "test_loss": f"{test_loss:.6g}" if last else "",
        })  # fmt: skip
    return rows


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = analysis.load_digits_tensors()
    rows = []
    for variant in VARIANTS:
        for seed in SEEDS:
            rows += run(variant, seed, data)
            last = rows[-1]
            print(f"{variant:7s} seed {seed}: train loss {last['train_loss']}, test loss "
                  f"{last['test_loss']}, test error {last['test_error']}  "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)  # fmt: skip
    with OUT.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
