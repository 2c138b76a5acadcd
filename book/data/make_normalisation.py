"""Make the cached training runs of the chapter "Normalisation and residual connections"
(book/experiments/normalisation.ipynb): ``normalisation.csv``.

Six architectures of the same depth (20 layers of 64 units, 64 inputs, 10 classes) built by
``Network``, the same code as in the chapter:

- ``plain``:      h_l = f(W_l h_{l-1} + b_l)
- ``batchnorm``:  h_l = f(BN(W_l h_{l-1} + b_l))            (BatchNorm before f, Ioffe & Szegedy)
- ``layernorm``:  h_l = f(LN(W_l h_{l-1} + b_l))
- ``residual``:   h_l = h_{l-1} + f(W_l h_{l-1} + b_l)
- ``post_ln``:    h_l = LN(h_{l-1} + f(W_l h_{l-1} + b_l))  (the original transformer's order)
- ``pre_ln``:     h_l = h_{l-1} + f(W_l LN(h_{l-1}) + b_l), and LN before the output layer

The weights are those of ``actlib.analysis.build_mlp(64, 64, 20, 10, activation,
init="xavier", seed=seed)`` (sigma_w^2 = 1 for these square layers, the LeCun scale SELU
assumes), so for one seed every architecture starts from the same weights; the norm
layers start at gain 1 and shift 0. Each of the activations sigmoid, tanh, ReLU, SELU,
GELU and SiLU trains each architecture on scikit-learn's digits
(``actlib.analysis.load_digits_tensors``) with ``actlib.analysis.train``: SGD, momentum 0.9,
learning rate 0.01, batches of 64, 5 epochs (110 steps), 5 seeds. One row per run:

- ``loss_curve``, ``error_curve``: training-set loss and error before training and after
  every epoch (6 values, evaluated in eval mode, BatchNorm with its running statistics);
- ``final_loss``, ``final_error``, ``test_error``: at the end ("nan" if the run diverged,
  ``diverged = 1``);
- ``ratio_init``, ``ratio_final``: ||dL/dz_1|| / ||dL/dz_20|| with z_l the input of the
  l-th activation, on the whole training set in training mode (BatchNorm with batch
  statistics), float32, before and after training;
- ``dead_final``: per layer (20 values) the fraction of units with f'(z) = 0 for every
  training example, in eval mode, after training.

    nice .venv/bin/python book/data/make_normalisation.py   # 205 s CPU on 1 core (7.5 min wall on a busy 2-core machine)
"""

import csv
import math
import time
from pathlib import Path

import torch
from torch import nn

from actlib import analysis

HERE = Path(__file__).parent
OUT = HERE / "normalisation.csv"
DEPTH, WIDTH, CLASSES = 20, 64, 10
VARIANTS = ["plain", "batchnorm", "layernorm", "residual", "post_ln", "pre_ln"]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "selu", "gelu", "silu"]
SEEDS = range(5)
EPOCHS, BATCH, LR, MOMENTUM = 5, 64, 0.01, 0.9
FIELDS = ["variant", "activation", "seed", "diverged", "final_loss", "final_error",
          "test_error", "ratio_init", "ratio_final", "dead_final", "loss_curve",
          "error_curve"]  # fmt: skip


class Network(nn.Module):
    """A deep perceptron with optional normalisation layers and residual connections."""

    def __init__(self, variant, activation, depth=DEPTH, width=WIDTH, classes=CLASSES,
                 seed=0, dtype=None):  # fmt: skip
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        mlp = analysis.build_mlp(width, width, depth, classes, activation, init="xavier",
                                 seed=seed, dtype=dtype)  # fmt: skip
        linears = analysis.linear_layers(mlp)
        self.variant = variant
        self.linears = nn.ModuleList(linears[:-1])
        self.acts = nn.ModuleList(analysis.activation_layers(mlp))
        norm = {"batchnorm": nn.BatchNorm1d}.get(variant, nn.LayerNorm)
        count = {"plain": 0, "residual": 0, "pre_ln": depth + 1}.get(variant, depth)
        self.norms = nn.ModuleList(norm(width, dtype=dtype) for _ in range(count))
        self.head = linears[-1]

    def forward(self, x):
        h, v = x, self.variant
        for i, (linear, act) in enumerate(zip(self.linears, self.acts, strict=True)):
            if v == "plain":
                h = act(linear(h))
            elif v in ("batchnorm", "layernorm"):
                h = act(self.norms[i](linear(h)))
            elif v == "residual":
                h = h + act(linear(h))
            elif v == "post_ln":
                h = self.norms[i](h + act(linear(h)))
            else:  # pre_ln
                h = h + act(linear(self.norms[i](h)))
        if v == "pre_ln":
            h = self.norms[-1](h)
        return self.head(h)


def activation_inputs(model, x, y):
    """(z_l of every activation, dL/dz_l), on the batch (x, y), in the model's current mode."""
    zs = []
    hooks = [act.register_forward_hook(lambda m, args, out: zs.append(args[0]))
             for act in model.acts]  # fmt: skip
    try:
        loss = nn.functional.cross_entropy(model(x), y)
    finally:
        for hook in hooks:
            hook.remove()
    return [z.detach() for z in zs], [g.detach() for g in torch.autograd.grad(loss, zs)]


def gradient_ratio(model, x, y):
    """||dL/dz_1|| / ||dL/dz_L||, in training mode (BatchNorm on the batch's statistics)."""
    was = model.training
    model.train()
    _, grads = activation_inputs(model, x, y)
    model.train(was)
    return float(grads[0].norm() / grads[-1].norm())


def dead_fraction(model, x, y):
    """Per layer, the fraction of units with f'(z) = 0 on every example (in the current mode)."""
    with torch.enable_grad():
        zs, _ = activation_inputs(model, x, y)
    return [float((analysis.activation_derivative(a, z) == 0).all(dim=0).float().mean())
            for a, z in zip(model.acts, zs, strict=True)]  # fmt: skip


def fmt(values, spec=".4g"):
    return " ".join("nan" if math.isnan(v) else f"{v:{spec}}" for v in values)


def run(variant, name, seed, x, y, x_test, y_test):
    """One training run; the same call the chapter repeats."""
    model = Network(variant, name, seed=seed)
    ratio_init = gradient_ratio(model, x, y)
    curve = analysis.train(model, x, y, epochs=EPOCHS, lr=LR, batch_size=BATCH,
                           momentum=MOMENTUM, seed=seed, x_test=x_test, y_test=y_test)  # fmt: skip
    return model, curve, ratio_init


def row(variant, name, seed, x, y, x_test, y_test):
    model, curve, ratio_init = run(variant, name, seed, x, y, x_test, y_test)
    out = {"variant": variant, "activation": name, "seed": seed,
           "diverged": int(curve.diverged), "ratio_init": f"{ratio_init:.4g}",
           "loss_curve": fmt(curve.loss), "error_curve": fmt(curve.error)}  # fmt: skip
    if curve.diverged:
        out.update(final_loss="nan", final_error="nan", test_error="nan", ratio_final="nan",
                   dead_final="nan")  # fmt: skip
        return out
    model.eval()
    out.update(final_loss=f"{curve.loss[-1]:.4g}", final_error=f"{curve.error[-1]:.4f}",
               test_error=f"{curve.test_error[-1]:.4f}",
               ratio_final=f"{gradient_ratio(model, x, y):.4g}",
               dead_final=fmt(dead_fraction(model, x, y)))  # fmt: skip
    return out


def main():
    torch.set_num_threads(1)
    x, y, x_test, y_test = analysis.load_digits_tensors()
    start = time.time()
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for variant in VARIANTS:
            for name in ACTIVATIONS:
                for seed in SEEDS:
                    writer.writerow(row(variant, name, seed, x, y, x_test, y_test))
                handle.flush()
                print(f"{variant:10s} {name:8s} {time.time() - start:5.0f} s", flush=True)
    print(f"done in {time.time() - start:.0f} s ({time.process_time():.0f} s CPU)")


if __name__ == "__main__":
    main()
