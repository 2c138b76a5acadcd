"""Make the two cached measurements of the dead-units chapter (book/experiments/dead_units.ipynb).

``dead_units_init.csv``: dead ReLUs at initialisation. A 30-layer perceptron of width 64
(64 → 30 × 64 → 10) is built by ``actlib.analysis.build_mlp`` with each of the inits
``default`` (PyTorch's), ``xavier`` and ``he``, and once more He-initialised with every
bias set to 0.1 (``he_bias_0.1``, the chapter's Exercise 3), for ten seeds each. One row
per network; ``dead`` holds the fraction of dead units of each of the 30 hidden layers
(input side first) on the digits training set, no training.

``dead_units.csv``: the learning-rate sweep. ReLU, leaky ReLU, ELU and GELU each train
the perceptron 64 → 4 × 128 → 10 (He initialisation) on scikit-learn's digits with SGD +
momentum 0.9, batches of 32, for 5 epochs, at five learning rates and ten seeds. The dead
units of each layer are measured with ``actlib.analysis.dead_units`` on the whole training
set before the first step and after every quarter epoch (21 evaluations). One row per run;
per-layer columns hold four space-separated values, input side first:

- ``dead_init``, ``dead_final``: fraction of units with f'(z) = 0 on every training
  example, before training and at the end;
- ``nearly_dead_final``: the same with |f'(z)| <= 0.01 (a leaky ReLU that is never on);
- ``ever_dead``: units dead at one evaluation at least (initialisation included);
- ``revived``: units dead at some evaluation and alive at the end;
- ``max_dead_input``: the largest input z that any unit dead at the end receives on any
  training example ("nan" where no unit of the layer is dead);
- ``dead_curve``: the dead fraction of the four layers at each of the 21 evaluations
  (84 values, evaluation-major), ``error_curve``: the training error at each evaluation.

A run diverged when its loss became NaN or infinite (``diverged = 1``; ``diverged_at`` is
the epoch of the first non-finite evaluation). Its curves stop there ("nan" after), and
its end-of-run columns are "nan".

    nice .venv/bin/python book/data/make_dead_units.py      # about 3 minutes on 1 core (194 s CPU)
"""

import csv
import math
import time
from pathlib import Path

import torch

from actlib import analysis

HERE = Path(__file__).parent
OUT_INIT, OUT_SWEEP = HERE / "dead_units_init.csv", HERE / "dead_units.csv"
INIT_DEPTH, INIT_WIDTH = 30, 64
INITS = ["default", "xavier", "he", "he_bias_0.1"]
ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu"]
LEARNING_RATES = [0.01, 0.03, 0.05, 0.1, 0.2]
SEEDS = range(10)
EPOCHS, EVALS_PER_EPOCH, BATCH, MOMENTUM, WIDTH, DEPTH = 5, 4, 32, 0.9, 128, 4
NEARLY_DEAD_TOL = 0.01
FIELDS = [
    "activation", "lr", "seed", "diverged", "diverged_at", "final_train_error",
    "min_train_error", "dead_init", "dead_final", "nearly_dead_final", "ever_dead", "revived",
    "max_dead_input", "dead_curve", "error_curve",
]  # fmt: skip


def build_init_network(init, seed):
    """The 30-layer ReLU network of the first measurement; ``he_bias_0.1``: He, biases 0.1."""
    model = analysis.build_mlp(
        64, INIT_WIDTH, INIT_DEPTH, 10, "relu", init=init.removesuffix("_bias_0.1"), seed=seed
    )
    if init.endswith("_bias_0.1"):
        with torch.no_grad():
            for layer in analysis.linear_layers(model):
                layer.bias.fill_(0.1)
    return model


def run(name, lr, seed, x, y, on_eval=None):
    """One training run of the sweep; the same call the notebook makes."""
    model = analysis.build_mlp(64, WIDTH, DEPTH, 10, name, init="he", seed=seed)
    curve = analysis.train(
        model, x, y, epochs=EPOCHS, lr=lr, batch_size=BATCH, momentum=MOMENTUM, seed=seed,
        evals_per_epoch=EVALS_PER_EPOCH, on_eval=on_eval,
    )  # fmt: skip
    return model, curve


def fmt(values, spec=".4f"):
    return " ".join("nan" if math.isnan(v) else f"{v:{spec}}" for v in values)


def max_dead_input(model, x, dead):
    """Per layer, the largest input that any unit in ``dead`` (masks) sees on any example."""
    inputs = []
    hooks = [
        act.register_forward_hook(lambda module, args, output: inputs.append(args[0]))
        for act in analysis.activation_layers(model)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return [
        z.max(dim=0).values[mask].max().item() if mask.any() else math.nan
        for z, mask in zip(inputs, dead, strict=True)
    ]


def write_init(x):
    with OUT_INIT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["init", "seed", "dead"])
        writer.writeheader()
        for init in INITS:
            for seed in SEEDS:
                dead = analysis.dead_unit_fraction(build_init_network(init, seed), x)
                writer.writerow({"init": init, "seed": seed, "dead": fmt(dead)})


def sweep_row(name, lr, seed, x, y):
    masks = []  # dead masks at every evaluation (index 0: before training)

    def record(model, epoch):
        masks.append(analysis.dead_units(model, x))

    model, curve = run(name, lr, seed, x, y, on_eval=record)
    n_evals = EPOCHS * EVALS_PER_EPOCH + 1
    finite = [math.isfinite(v) for v in curve.loss]
    n_finite = finite.index(False) if not all(finite) else n_evals
    masks = masks[:n_finite]  # a non-finite evaluation has no meaningful dead units
    dead_curve = [m.float().mean().item() for mask in masks for m in mask]
    dead_curve += [math.nan] * (DEPTH * n_evals - len(dead_curve))
    row = {
        "activation": name,
        "lr": lr,
        "seed": seed,
        "dead_init": fmt(m.float().mean().item() for m in masks[0]),
        "min_train_error": f"{min(curve.error[:n_finite]):.4f}",
        "dead_curve": fmt(dead_curve),
        "error_curve": fmt(curve.error),
    }
    if curve.diverged:
        row.update(diverged=1, diverged_at=f"{curve.epoch[n_finite]:g}", final_train_error="nan")
        for key in ("dead_final", "nearly_dead_final", "ever_dead", "revived", "max_dead_input"):
            row[key] = "nan"
        return row
    final = masks[-1]
    ever = [torch.stack([m[layer] for m in masks]).any(dim=0) for layer in range(DEPTH)]
    row.update(
        diverged=0,
        diverged_at="",
        final_train_error=f"{curve.error[-1]:.4f}",
        dead_final=fmt(m.float().mean().item() for m in final),
        nearly_dead_final=fmt(analysis.dead_unit_fraction(model, x, tol=NEARLY_DEAD_TOL)),
        ever_dead=fmt(e.float().mean().item() for e in ever),
        revived=fmt((e & ~f).float().mean().item() for e, f in zip(ever, final, strict=True)),
        max_dead_input=fmt(max_dead_input(model, x, final), spec=".4g"),
    )
    return row


def main():
    torch.set_num_threads(1)
    x, y, _, _ = analysis.load_digits_tensors()
    start = time.time()
    write_init(x)
    print(f"{OUT_INIT.name}: {time.time() - start:.0f} s", flush=True)
    with OUT_SWEEP.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for name in ACTIVATIONS:
            for lr in LEARNING_RATES:
                for seed in SEEDS:
                    writer.writerow(sweep_row(name, lr, seed, x, y))
                handle.flush()
                print(f"{name:10s} lr {lr:<5g} {time.time() - start:5.0f} s", flush=True)
    print(f"done in {time.time() - start:.0f} s ({time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
