"""Make book/data/relu_fits.csv, the cached sin(1.5x) fits of the ReLU chapter.

A one-hidden-layer network, ``Linear(1, 10) → ReLU → Linear(10, 1)``, is fitted to
sin(1.5x) on 200 evenly spaced points of [-3, 3] with full-batch Adam (learning rate 0.05,
500 steps), in float32, as in the chapter. The initialisation is PyTorch's ``nn.Linear``
default (``actlib.analysis.build_mlp(1, 10, 1, 1, "relu", init="default", seed=seed)``),
for 20 seeds. Each seed is trained twice: from that initialisation (``jitter`` 0) and
from it with every parameter moved by an independent N(0, (1e-6)²) number (``jitter``
1e-6), a change of the size of a float32 rounding difference, to show how much of the
result a different machine may change.

One row per run:

- ``mse``: mean squared error on the 200 points after the last step;
- ``kinks_inside``: hidden units whose kink -b/w lies inside (-3, 3);
- ``dead_on_grid``: hidden units whose input is not positive at any of the 200 points
  (they output 0 on the whole interval and get no gradient);
- ``last_steps_low``, ``last_steps_high``: the smallest and largest training loss of the
  last 50 steps (how much the fit still moves at the end).

    .venv/bin/python book/data/make_relu_fits.py      # about 30 seconds of CPU time
"""

import csv
import time
from pathlib import Path

import torch

from actlib import analysis
from actlib.device import stream_generator

OUT = Path(__file__).with_name("relu_fits.csv")
SEEDS = range(20)
JITTERS = (0.0, 1e-6)
UNITS, STEPS, LR = 10, 500, 0.05
FIELDS = [
    "seed", "jitter", "mse", "kinks_inside", "dead_on_grid", "last_steps_low", "last_steps_high",
]


def data(device=None):
    """The 200 points and the target, as in the chapter."""
    xs = torch.linspace(-3, 3, 200, device=device).unsqueeze(1)
    return xs, torch.sin(1.5 * xs)


def fit(seed, jitter=0.0, device=None):
    """One fit, the same calls as the chapter's (which runs ``jitter = 0``): (net, losses)."""
    net = analysis.build_mlp(1, UNITS, 1, 1, "relu", init="default", seed=seed)
    if jitter:
        # Drawn from the "order" stream, so that it is unrelated to the parameters'.
        generator = stream_generator("order", seed)
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(jitter * torch.randn(parameter.shape, generator=generator))
    net = net.to(device)
    xs, target = data(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = (net(xs) - target).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return net, losses


def summary(net, device=None):
    """(mse, kinks inside (-3, 3), hidden units dead on the grid) of a fitted net."""
    xs, target = data(device)
    with torch.no_grad():
        mse = (net(xs) - target).pow(2).mean().item()
        w, b = net[0].weight.squeeze(1), net[0].bias
        kinks = -b / w
        inside = int((kinks.abs() < 3).sum())
        dead = int((net[0](xs) > 0).sum(dim=0).eq(0).sum())
    return mse, inside, dead


def main():
    torch.set_num_threads(1)
    start = time.time()
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for seed in SEEDS:
            for jitter in JITTERS:
                net, losses = fit(seed, jitter)
                mse, inside, dead = summary(net)
                writer.writerow({"seed": seed, "jitter": f"{jitter:g}", "mse": f"{mse:.6g}",
                                 "kinks_inside": inside, "dead_on_grid": dead,
                                 "last_steps_low": f"{min(losses[-50:]):.6g}",
                                 "last_steps_high": f"{max(losses[-50:]):.6g}"})
            handle.flush()
    print(f"done in {time.time() - start:.0f} s ({time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
