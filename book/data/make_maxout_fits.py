"""Make book/data/maxout_fits.csv, the cached fits of x² by one maxout unit (maxout chapter).

One maxout unit with k = 2, 4 or 8 pieces, ``Linear(1, k) → Maxout(k)``, is fitted to x²
on 201 evenly spaced points of [-2, 2] with full-batch Adam (learning rate 0.02, 400
steps), in float32, as in the chapter. Three kinds of start (column ``start``):

- ``tangent``: the pieces start as the tangents of x²/1.5 at k evenly spaced points of
  [-2, 2], the chapter's start (``jitter`` 0, one run: it has no randomness);
- ``tangent`` with ``jitter`` 0.001: the same, every parameter moved by an independent
  N(0, 0.001²) number, 10 seeds, to show how much a small change of the start (larger
  than any rounding difference between machines) changes the result;
- ``default``: PyTorch's ``nn.Linear`` default, weights and biases U(-1, 1) for one
  input, drawn from actlib's parameter stream of the seed, 10 seeds.

One row per run: ``max_abs_error`` and ``mse`` on the 201 points after the last step,
``winning_pieces``, the number of pieces that are the maximum at one point at least after
the last step (a piece that never wins gets no gradient), ``winning_at_start``, the same
before the first step, and ``revived_pieces``, the pieces that won nowhere at the start
but somewhere at the end.

    .venv/bin/python book/data/make_maxout_fits.py      # about 30 seconds of CPU time
"""

import csv
import time
from pathlib import Path

import torch

import actlib
from actlib.device import stream_generator

OUT = Path(__file__).with_name("maxout_fits.csv")
PIECES = (2, 4, 8)
SEEDS = range(10)
JITTER = 1e-3
STEPS, LR = 400, 0.02
FIELDS = [
    "k", "start", "jitter", "seed", "max_abs_error", "mse", "winning_pieces",
    "winning_at_start", "revived_pieces",
]


def data(device=None):
    """The 201 points and the target, as in the chapter."""
    xs = torch.linspace(-2, 2, 201, device=device).unsqueeze(1)
    return xs, xs.pow(2)


def make_unit(k, start="tangent", seed=0, jitter=0.0):
    """A maxout unit with k pieces, on the CPU, started as described above."""
    unit = torch.nn.Sequential(torch.nn.utils.skip_init(torch.nn.Linear, 1, k), actlib.Maxout(k))
    generator = stream_generator("parameters", seed)
    with torch.no_grad():
        if start == "tangent":
            touch = torch.linspace(-2, 2, k)  # tangent points of x²/1.5
            unit[0].weight.copy_((2 * touch / 1.5).unsqueeze(1))
            unit[0].bias.copy_(-touch.pow(2) / 1.5)
            for parameter in unit[0].parameters():
                parameter.add_(jitter * torch.randn(parameter.shape, generator=generator))
        elif start == "default":
            unit[0].weight.uniform_(-1, 1, generator=generator)
            unit[0].bias.uniform_(-1, 1, generator=generator)
        else:
            raise ValueError(f"unknown start {start!r}")
    return unit


def fit(unit, device=None):
    """Train ``unit`` in place; the same loop as the chapter's."""
    xs, target = data(device)
    optimizer = torch.optim.Adam(unit.parameters(), lr=LR)
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = (unit(xs) - target).pow(2).mean()
        loss.backward()
        optimizer.step()
    return unit


def winning(unit, device=None):
    """The set of pieces that are the maximum at one of the points at least."""
    xs, _ = data(device)
    with torch.no_grad():
        return set(unit[0](xs).argmax(dim=1).unique().tolist())


def summary(unit, device=None):
    """(max |error|, mse) of a fitted unit."""
    xs, target = data(device)
    with torch.no_grad():
        error = unit(xs) - target
    return error.abs().max().item(), error.pow(2).mean().item()


def main():
    torch.set_num_threads(1)
    start = time.time()
    runs = [("tangent", 0.0, 0)]
    runs += [("tangent", JITTER, seed) for seed in SEEDS]
    runs += [("default", 0.0, seed) for seed in SEEDS]
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for k in PIECES:
            for kind, jitter, seed in runs:
                unit = make_unit(k, kind, seed, jitter)
                at_start = winning(unit)
                error, mse = summary(fit(unit))
                at_end = winning(unit)
                writer.writerow({"k": k, "start": kind, "jitter": f"{jitter:g}", "seed": seed,
                                 "max_abs_error": f"{error:.6g}", "mse": f"{mse:.6g}",
                                 "winning_pieces": len(at_end), "winning_at_start": len(at_start),
                                 "revived_pieces": len(at_end - at_start)})
            handle.flush()
    print(f"done in {time.time() - start:.0f} s ({time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
