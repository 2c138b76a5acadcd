"""Make the cached training runs of the Glorot-Bengio chapter (book/experiments/glorot_bengio.ipynb).

A small version of the experiment of Glorot and Bengio (2010): a perceptron 64 → 4 × 256 →
10 trains on scikit-learn's handwritten digits (1348 training images of 8×8 pixels) with
plain SGD (no momentum), learning rate 0.3, mini-batches of 10, for 800 steps (about 5.9
epochs), for each of

- the activations ``sigmoid``, ``tanh`` and ``softsign``;
- two initialisations, both with zero biases: ``standard``, W ~ U(−1/√n, 1/√n) (the law of
  ``build_mlp``'s ``"default"``, with its biases then set to 0, as in the paper), and
  ``normalised``, ``build_mlp``'s ``"xavier"``, W ~ N(0, 2/(n_in + n_out)) (the variance of
  the paper's U(±√6/√(n_in + n_out)));
- five seeds (parameters, and the order of the examples).

An ``actlib.TrainingMonitor`` watches the four hidden layers on every 10th step's
mini-batch (steps 0, 10, …, 790) with 100-bin histograms. A unit's output h is called
saturated when it lies within 5 % of the half-range from an asymptote, |u| > 0.95 with
u = 2h − 1 for the sigmoid and u = h for tanh and softsign; the monitor counts it by the
equivalent threshold on f′(z) (``SATURATION_BELOW``).

``glorot_bengio.csv``: one row per run and sampled step: ``activation``, ``init``,
``seed``, ``step``, the mini-batch ``loss``, and per hidden layer l = 1 … 4 (input side
first) ``mean_l``, ``std_l`` (the monitor's), ``p2_l``, ``p98_l`` (2nd and 98th
percentiles of h, read off the monitor's histogram by linear interpolation, so to within
a bin, at most 0.02) and ``saturated_l``.

``glorot_bengio_histograms.csv``: one row per run, moment (``init``: before the first step,
``final``: after the last) and layer: the distribution of h over the 300 first test
examples, recorded by a monitor on one forward and backward pass (no optimiser step), as
the fraction of values in each of 40 equal bins over the range of f (``counts``,
space-separated; re-binned from a 400-bin monitor histogram), with the run's
``test_error`` on all 449 test images at that moment.

    nice .venv/bin/python book/data/make_glorot_bengio.py    # about 2.5 minutes (137 s, one thread, busy 2-core machine)
"""

import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import actlib
from actlib import analysis
from actlib.device import stream_generator

HERE = Path(__file__).parent
OUT_RUNS, OUT_HIST = HERE / "glorot_bengio.csv", HERE / "glorot_bengio_histograms.csv"
ACTIVATIONS = ("sigmoid", "tanh", "softsign")
INITS = {"standard": "default", "normalised": "xavier"}
SEEDS = range(5)
DEPTH, WIDTH, LR, BATCH, STEPS, EVERY, BINS = 4, 256, 0.3, 10, 800, 10, 100
HIST_BINS, HIST_EXAMPLES = 40, 300
#: the output range of each activation (for the histograms)
RANGE = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0)}
#: f'(z) where |u| = 0.95: sigmoid h(1 − h) at h = 0.025, tanh 1 − h², softsign (1 − |h|)²
SATURATION_BELOW = {"sigmoid": 0.025 * 0.975, "tanh": 1 - 0.95**2, "softsign": 0.05**2}


def build(activation, init, seed, device=None):
    """The network of one run: ``build_mlp``'s weights, every bias set to 0."""
    model = analysis.build_mlp(64, WIDTH, DEPTH, 10, activation, init=INITS[init], seed=seed,
                               device=device)  # fmt: skip
    with torch.no_grad():
        for layer in analysis.linear_layers(model):
            layer.bias.zero_()
    return model


def monitor(model, activation, every=EVERY, bins=BINS):
    """A TrainingMonitor that counts |u| > 0.95 as saturated and never warns."""
    return actlib.TrainingMonitor(model, every=every, bins=bins,
                                  saturation_below=SATURATION_BELOW[activation],
                                  warn_dead=1.0, update_range=(0.0, math.inf))  # fmt: skip


def train(model, x, y, seed, watch, steps=STEPS):
    """Plain SGD on mini-batches of BATCH drawn without replacement, epoch after epoch, in the
    order of the seed's "order" stream; ``watch`` is the monitor. Returns the losses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    generator = stream_generator("order", seed)
    order, position, losses = torch.randperm(len(x), generator=generator), 0, []
    for _ in range(steps):
        if position + BATCH > len(x):
            order, position = torch.randperm(len(x), generator=generator), 0
        batch = order[position : position + BATCH].to(x.device)
        position += BATCH
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        watch.after_backward()
        optimizer.step()
        watch.after_step()
        losses.append(loss.item())
    return losses


def percentile(histogram, q):
    """The q-quantile of the values of a monitor Histogram, interpolated within its bin."""
    counts, edges = histogram.counts.double(), histogram.edges.double()
    cumulative = torch.cat([torch.zeros(1, dtype=counts.dtype), counts.cumsum(0)])
    target = q * cumulative[-1]
    i = int(torch.searchsorted(cumulative, target).clamp(1, len(counts)))
    low, high = cumulative[i - 1], cumulative[i]
    share = 0.0 if high == low else float((target - low) / (high - low))
    return float(edges[i - 1] + share * (edges[i] - edges[i - 1]))


def rebin(histogram, low, high, bins=HIST_BINS):
    """Fractions of the values in ``bins`` equal bins over [low, high], from the monitor's
    finer histogram (its cumulative counts interpolated linearly at the new edges)."""
    counts, edges = histogram.counts.double(), histogram.edges.double()
    cumulative = torch.cat([torch.zeros(1, dtype=counts.dtype), counts.cumsum(0)])
    new_edges = np.linspace(low, high, bins + 1)
    at = np.interp(new_edges, edges.numpy(), cumulative.numpy())
    return ((at[1:] - at[:-1]) / float(cumulative[-1])).tolist()


def test_pass(model, activation, x, y):
    """Per hidden layer, the monitor's 400-bin histogram of h on one forward and backward
    pass over ``x`` (no optimiser step; the gradients are cleared again)."""
    watch = monitor(model, activation, every=1, bins=400)
    F.cross_entropy(model(x), y).backward()
    watch.after_backward()
    watch.close()
    model.zero_grad(set_to_none=True)
    return {r.layer: r.activations for r in watch.layer_records}


def main() -> None:
    torch.set_num_threads(1)
    x, y, x_test, y_test = analysis.load_digits_tensors()
    layers = range(1, DEPTH + 1)
    header = ["activation", "init", "seed", "step", "loss"]
    for field in ("mean", "std", "p2", "p98", "saturated"):
        header += [f"{field}_{layer}" for layer in layers]
    runs, hists = [], []
    start = time.time()
    for activation in ACTIVATIONS:
        for init in INITS:
            for seed in SEEDS:
                model = build(activation, init, seed)
                before = test_pass(model, activation, x_test[:HIST_EXAMPLES],
                                   y_test[:HIST_EXAMPLES])  # fmt: skip
                error_before = analysis.evaluate(model, x_test, y_test)[1]
                watch = monitor(model, activation)
                losses = train(model, x, y, seed, watch)
                watch.close()
                after = test_pass(model, activation, x_test[:HIST_EXAMPLES],
                                  y_test[:HIST_EXAMPLES])  # fmt: skip
                error_after = analysis.evaluate(model, x_test, y_test)[1]
                names = list(watch.layers)  # the activation modules, input side first
                by_step = {}
                for record in watch.layer_records:
                    by_step.setdefault(record.step, {})[record.layer] = record
                for step, records in sorted(by_step.items()):
                    row = {"activation": activation, "init": init, "seed": seed, "step": step,
                           "loss": f"{losses[step]:.5g}"}  # fmt: skip
                    for layer, name in zip(layers, names, strict=True):
                        r = records[name]
                        row[f"mean_{layer}"] = f"{r.mean:.5g}"
                        row[f"std_{layer}"] = f"{r.std:.5g}"
                        row[f"p2_{layer}"] = f"{percentile(r.activations, 0.02):.5g}"
                        row[f"p98_{layer}"] = f"{percentile(r.activations, 0.98):.5g}"
                        row[f"saturated_{layer}"] = f"{r.saturated:.5g}"
                    runs.append(row)
                low, high = RANGE[activation]
                for moment, histograms, error in (("init", before, error_before),
                                                  ("final", after, error_after)):  # fmt: skip
                    for layer, name in zip(layers, names, strict=True):
                        counts = rebin(histograms[name], low, high)
                        hists.append({"activation": activation, "init": init, "seed": seed,
                                      "moment": moment, "layer": layer,
                                      "test_error": f"{error:.5g}",
                                      "counts": " ".join(f"{c:.4g}" for c in counts)})  # fmt: skip
                print(f"{activation:8s} {init:10s} seed {seed}: test error {error_after:.3f} "
                      f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
    with OUT_RUNS.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(runs)
    with OUT_HIST.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(hists[0]))
        writer.writeheader()
        writer.writerows(hists)
    print(
        f"wrote {OUT_RUNS.name} ({len(runs)} rows) and {OUT_HIST.name} ({len(hists)} rows) "
        f"in {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
