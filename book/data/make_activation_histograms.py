"""Make the per-layer histograms of the sigmoid, tanh, ReLU and GELU chapters.

One small deep perceptron, 64 → 6 × 128 → 10, trains on scikit-learn's handwritten digits
(1348 training images of 8×8 pixels, ``analysis.load_digits_tensors()``) with
``analysis.train``: SGD with momentum 0.9, learning rate 0.01, mini-batches of 32, 15
epochs (645 steps), for each of

- the activations ``sigmoid`` and ``tanh`` with Xavier's initialisation (``build_mlp``'s
  ``"xavier"``, W ~ N(0, 2/(n_in + n_out)), zero biases), and ``relu`` and ``gelu`` with
  He's (``"he"``, W ~ N(0, 2/n_in), zero biases);
- five seeds (parameters, and the order of the examples).

An ``actlib.TrainingMonitor``, driven by ``analysis.train``'s ``on_backward`` and
``on_step`` callbacks, watches the six hidden layers during training on the mini-batch of
every 43rd step (once an epoch: steps 0, 43, …, 602). Before the first step (``init``) and
after the last (``final``), a second monitor records one forward and backward pass over the
first 300 test images (no optimiser step) with 400-bin histograms of the outputs h of each
hidden layer and of the gradients ∂L/∂h that reach them (L: the mean cross-entropy over
the 300 images).

``activation_histograms.csv``: one row per run, moment, layer (1 … 6, input side first)
and ``kind`` (``activations`` or ``gradients``): the fraction of the layer's values in each
of 50 equal bins over [``low``, ``high``] (``counts``, space-separated; re-binned from the
monitor's histogram by interpolating its cumulative counts, so values outside the interval
are left out). For the activations the interval is fixed per activation (``RANGE``); for the
gradients it is [−G, G] with G the largest, over the six layers of that run and moment, of
the 0.5th and 99.5th percentiles of |∂L/∂h| (so all layers of a run share the bins).

``activation_histograms_summary.csv``: one row per run, moment and layer: the monitor's
``mean`` and ``std`` of h, ``saturated`` (fraction of elements with |f′(z)| < 0.01) and
``dead`` (fraction of units with f′(z) = 0 on all 300 images), ``zero`` and ``negative``
(fractions of elements with h = 0 and h < 0), ``grad_rms`` (root mean square of ∂L/∂h),
and the run's ``test_error`` on all 449 test images at that moment.

``activation_histograms_training.csv``: one row per run, sampled training step and layer:
the training monitor's ``saturated`` and ``dead`` on that step's mini-batch of 32.

    nice .venv/bin/python book/data/make_activation_histograms.py    # about 1 minute (48 s on one thread; 5 minutes on a 2-core machine busy with other jobs)
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

HERE = Path(__file__).parent
OUT_HIST = HERE / "activation_histograms.csv"
OUT_SUMMARY = HERE / "activation_histograms_summary.csv"
OUT_TRAINING = HERE / "activation_histograms_training.csv"
INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "he", "gelu": "he"}
SEEDS = range(5)
DEPTH, WIDTH, LR, BATCH, EPOCHS, EVERY = 6, 128, 0.01, 32, 15, 43
PROBE, FINE_BINS, BINS = 300, 400, 50
#: the interval of the activation histograms (GELU's minimum is −0.17)
RANGE = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 4.0), "gelu": (-0.25, 4.0)}


def quiet_monitor(model, every, bins=40):
    """A TrainingMonitor that never warns (the chapters print nothing to stderr)."""
    return actlib.TrainingMonitor(model, every=every, bins=bins, warn_dead=1.0,
                                  update_range=(0.0, math.inf))  # fmt: skip


def cumulative(histogram):
    counts, edges = histogram.counts.double(), histogram.edges.double()
    return edges.numpy(), torch.cat([torch.zeros(1, dtype=counts.dtype), counts.cumsum(0)]).numpy()


def percentile(histogram, q):
    """The q-quantile of a monitor Histogram's values, interpolated within its bin."""
    edges, cum = cumulative(histogram)
    return float(np.interp(q * cum[-1], cum, edges))


def rebin(histogram, low, high, bins=BINS):
    """Fractions of the values in ``bins`` equal bins over [low, high]."""
    edges, cum = cumulative(histogram)
    at = np.interp(np.linspace(low, high, bins + 1), edges, cum)
    return ((at[1:] - at[:-1]) / cum[-1]).tolist()


def probe(model, x, y):
    """One forward and backward pass over ``x``: the monitor's records per hidden layer, and
    the exact fractions h = 0, h < 0 and the RMS of ∂L/∂h (from hooks of our own)."""
    watch = quiet_monitor(model, every=1, bins=FINE_BINS)
    outputs = []

    def keep(_module, _inputs, h):
        h.retain_grad()
        outputs.append(h)

    handles = [act.register_forward_hook(keep) for act in analysis.activation_layers(model)]
    F.cross_entropy(model(x), y).backward()
    for handle in handles:  # before the monitor runs the modules again for f'(z)
        handle.remove()
    watch.after_backward()
    watch.close()
    model.zero_grad(set_to_none=True)
    extra = [{"zero": float((h == 0).double().mean()), "negative": float((h < 0).double().mean()),
              "grad_rms": float(h.grad.double().square().mean().sqrt())} for h in outputs]  # fmt: skip
    return watch.layer_records, extra


def main() -> None:
    torch.set_num_threads(1)
    x, y, x_test, y_test = analysis.load_digits_tensors()
    hists, summary, training = [], [], []
    start = time.time()
    for activation, init in INIT.items():
        for seed in SEEDS:
            model = analysis.build_mlp(64, WIDTH, DEPTH, 10, activation, init=init, seed=seed)
            moments = {"init": probe(model, x_test[:PROBE], y_test[:PROBE])}
            errors = {"init": analysis.evaluate(model, x_test, y_test)[1]}
            watch = quiet_monitor(model, every=EVERY)
            analysis.train(model, x, y, epochs=EPOCHS, lr=LR, batch_size=BATCH, seed=seed,
                           on_backward=lambda m, s, w=watch: w.after_backward(),
                           on_step=lambda m, s, w=watch: w.after_step())  # fmt: skip
            watch.close()
            names = list(watch.layers)  # the activation modules, input side first
            layer_of = {name: i + 1 for i, name in enumerate(names)}
            for r in watch.layer_records:
                training.append({"activation": activation, "init": init, "seed": seed,
                                 "step": r.step, "layer": layer_of[r.layer],
                                 "saturated": f"{r.saturated:.5g}", "dead": f"{r.dead:.5g}"})  # fmt: skip
            moments["final"] = probe(model, x_test[:PROBE], y_test[:PROBE])
            errors["final"] = analysis.evaluate(model, x_test, y_test)[1]
            for moment, (records, extra) in moments.items():
                key = {"activation": activation, "init": init, "seed": seed, "moment": moment}
                g = max(max(abs(percentile(r.gradients, 0.005)), abs(percentile(r.gradients, 0.995)))
                        for r in records)  # fmt: skip
                for r, more in zip(records, extra, strict=True):
                    layer = layer_of[r.layer]
                    for kind, (low, high) in (("activations", RANGE[activation]),
                                              ("gradients", (-g, g))):  # fmt: skip
                        counts = rebin(getattr(r, kind), low, high)
                        hists.append({**key, "layer": layer, "kind": kind, "low": f"{low:.6g}",
                                      "high": f"{high:.6g}",
                                      "counts": " ".join(f"{c:.4g}" for c in counts)})  # fmt: skip
                    summary.append({**key, "layer": layer, "mean": f"{r.mean:.5g}",
                                    "std": f"{r.std:.5g}", "saturated": f"{r.saturated:.5g}",
                                    "dead": f"{r.dead:.5g}", "zero": f"{more['zero']:.5g}",
                                    "negative": f"{more['negative']:.5g}",
                                    "grad_rms": f"{more['grad_rms']:.5g}",
                                    "test_error": f"{errors[moment]:.5g}"})  # fmt: skip
            print(f"{activation:8s} seed {seed}: test error {errors['final']:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
    for path, rows in ((OUT_HIST, hists), (OUT_SUMMARY, summary), (OUT_TRAINING, training)):
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote {OUT_HIST.name} ({len(hists)} rows), {OUT_SUMMARY.name} ({len(summary)} rows) "
          f"and {OUT_TRAINING.name} ({len(training)} rows) in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
