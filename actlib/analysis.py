r"""Measurements the experiment chapters share: deep MLPs, gradient flow, unit statistics,
dead units and a seeded training loop.

Everything here works on the plain multilayer perceptron that :func:`build_mlp` makes,

.. math::

    z_l = W_l h_{l-1} + b_l, \qquad h_l = f(z_l), \qquad l = 1, \dots, L,
    \qquad \text{logits} = W_{L+1} h_L + b_{L+1},

an ``nn.Sequential`` that alternates ``nn.Linear`` and activation modules. The helpers
read a model through its children, so any ``nn.Sequential`` of that shape works, with
activations from actlib, from ``torch.nn`` or your own.

An *activation* is given either as a name from :data:`actlib.catalog.CATALOG`
(``"relu"``, ``"maxout"`` …) or as a factory: a callable with no arguments that returns a
fresh ``nn.Module`` (``torch.nn.Tanh``, ``lambda: actlib.LeakyReLU(0.2)``). A module with
a ``num_pieces`` attribute (maxout) takes ``num_pieces`` times as many inputs as it has
outputs, a gated unit (GLU, ReGLU, GEGLU, SwiGLU) twice as many, and :func:`build_mlp`
widens the linear layer before it accordingly.

Randomness comes from seeded CPU generators (:func:`actlib.device.stream_generator`), never
from the global RNG, so a model, its data order and hence a whole training run are
reproduced exactly by the same seed. Data, parameters and the order of the examples each
have a stream of their own, so no seed can make a weight matrix a copy of the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .catalog import CATALOG
from .device import stream_generator
from .modules import GLU

ActivationLike = str | Callable[[], nn.Module]

#: The initialisations :func:`build_mlp` knows, by name.
INITS = ("default", "lecun", "xavier", "he")


# ----------------------------------------------------------------------------- models


_HIDDEN_KINDS = ("elementwise", "parametric", "maxout", "gated")


def inputs_per_output(activation: nn.Module) -> int:
    """How many inputs ``activation`` reads per output: 2 for a gated unit, k for maxout, else 1."""
    if isinstance(activation, GLU):  # ReGLU, GEGLU and SwiGLU are GLU's subclasses
        return 2
    return getattr(activation, "num_pieces", 1)


def activation_factory(activation: ActivationLike) -> Callable[[], nn.Module]:
    """A no-argument callable that returns a fresh activation module.

    ``activation`` is a catalog name or already a factory. Catalog names build the
    record's module with its first example arguments (``maxout`` with 2 pieces, PReLU
    with a learnable slope starting at 0.25). Output layers (``softmax``,
    ``log_softmax``, ``argmax``) are refused: they are not hidden-layer activations.
    """
    if callable(activation):
        return activation
    if activation not in CATALOG:
        raise KeyError(
            f"unknown activation {activation!r}; choose one of {sorted(CATALOG)} or pass a "
            "callable that returns an nn.Module"
        )
    record = CATALOG[activation]
    if record.kind not in _HIDDEN_KINDS:
        raise ValueError(
            f"{activation!r} (kind {record.kind!r}) is not a hidden-layer activation; use one of "
            f"{hidden_activations()}"
        )
    return record.make_module


def hidden_activations() -> list[str]:
    """Catalog names usable between the layers of an MLP, in catalog order.

    Those are the element-wise activations, PReLU (one learnable slope), maxout and the
    gated units.
    """
    return [name for name, record in CATALOG.items() if record.kind in _HIDDEN_KINDS]


def _init_linear(layer: nn.Linear, init: str, generator: torch.Generator) -> None:
    fan_out, fan_in = layer.weight.shape
    with torch.no_grad():
        if init == "default":
            # What nn.Linear does: U(-1/√fan_in, 1/√fan_in) for W and b, Var(W) = 1/(3 fan_in).
            bound = 1.0 / math.sqrt(fan_in)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
            return
        variance = {
            "lecun": 1.0 / fan_in,
            "xavier": 2.0 / (fan_in + fan_out),
            "he": 2.0 / fan_in,
        }[init]
        layer.weight.normal_(0.0, math.sqrt(variance), generator=generator)
        layer.bias.zero_()


def build_mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    activation: ActivationLike,
    init: str = "default",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    r"""A multilayer perceptron with ``depth`` hidden layers of ``width`` units each.

    ``Linear(in, width) → f → Linear(width, width) → f → … → Linear(width, out)``: there
    are ``depth`` activation modules and ``depth + 1`` linear layers. The weights are
    drawn on the CPU *parameter* stream of ``seed`` (:func:`actlib.device.stream_generator`;
    the global RNG is not touched, and the data of :func:`actlib.seeded_randn` never shares it), then
    the model is moved to ``device`` and ``dtype``. ``init`` sets every linear layer the same way:

    * ``"default"``: PyTorch's ``nn.Linear`` default,
      :math:`W, b \sim U(-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}})`, so
      :math:`\operatorname{Var} W = 1/(3 n_\text{in})`;
    * ``"lecun"``: :math:`W \sim N(0, 1/n_\text{in})`, :math:`b = 0` (LeCun et al. 1998;
      what SELU's self-normalisation assumes);
    * ``"xavier"``: :math:`W \sim N(0, 2/(n_\text{in} + n_\text{out}))`, :math:`b = 0`
      (Glorot and Bengio 2010);
    * ``"he"``: :math:`W \sim N(0, 2/n_\text{in})`, :math:`b = 0` (He et al. 2015).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    factory = activation_factory(activation)
    generator = stream_generator("parameters", seed)
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth):
        act = factory()
        pieces = inputs_per_output(act)
        # skip_init: build without drawing from the global RNG, then initialise ourselves.
        linear = nn.utils.skip_init(nn.Linear, fan_in, width * pieces)
        _init_linear(linear, init, generator)
        layers += [linear, act]
        fan_in = width
    head = nn.utils.skip_init(nn.Linear, fan_in, out_features)
    _init_linear(head, init, generator)
    layers.append(head)
    return nn.Sequential(*layers).to(device=device, dtype=dtype)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``model``, input side first."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def activation_layers(model: nn.Sequential) -> list[nn.Module]:
    """The activation modules of an MLP: its direct children that are not ``nn.Linear``."""
    return [m for m in model.children() if not isinstance(m, nn.Linear)]


# ------------------------------------------------------------------------ gradient flow


@dataclass
class GradientNorms:
    r"""Per-layer gradient norms from one backward pass, input side first.

    ``weight[l]`` is :math:`\lVert \partial L / \partial W_{l+1} \rVert_F` and
    ``preactivation[l]`` is :math:`\lVert \partial L / \partial z_{l+1} \rVert_F` (over the
    whole batch), for every linear layer including the output layer.
    """

    weight: list[float]
    preactivation: list[float]

    def ratio(self, which: str = "weight") -> float:
        """First hidden layer over last hidden layer (the output layer left out).

        Below 1 the gradient shrinks on its way back to the input (vanishes); above 1 it
        grows (explodes).
        """
        norms = getattr(self, which)
        return norms[0] / norms[-2]


def layer_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> list[torch.Tensor]:
    r"""The weight gradients :math:`\partial L/\partial W_l` of every linear layer for one batch.

    Computed with ``torch.autograd.grad``, so the parameters' ``.grad`` stay untouched.
    """
    weights = [layer.weight for layer in linear_layers(model)]
    loss = loss_fn(model(x), y)
    return [g.detach() for g in torch.autograd.grad(loss, weights)]


def layer_gradient_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> GradientNorms:
    r"""Norms of the weight and pre-activation gradients of every linear layer.

    A forward hook on each ``nn.Linear`` keeps its output :math:`z_l`; one call to
    ``torch.autograd.grad`` then returns :math:`\partial L/\partial W_l` and
    :math:`\partial L/\partial z_l` together. Backpropagation multiplies by one Jacobian
    per layer,

    .. math::

        \frac{\partial L}{\partial z_l} = f'(z_l) \odot
        \Bigl(W_{l+1}^\top \frac{\partial L}{\partial z_{l+1}}\Bigr),
        \qquad
        \frac{\partial L}{\partial W_l} = \frac{\partial L}{\partial z_l}\, h_{l-1}^\top,

    so the norms shrink or grow geometrically with depth when the factor
    :math:`|f'| \cdot \lVert W \rVert` stays below or above 1.
    """
    layers = linear_layers(model)
    outputs: list[torch.Tensor] = []
    handles = [
        layer.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for layer in layers
    ]
    try:
        loss = loss_fn(model(x), y)
    finally:
        for handle in handles:
            handle.remove()
    weights = [layer.weight for layer in layers]
    grads = torch.autograd.grad(loss, weights + outputs)
    norms = [float(g.detach().norm()) for g in grads]
    return GradientNorms(weight=norms[: len(layers)], preactivation=norms[len(layers) :])


# ------------------------------------------------------------------- unit statistics


@dataclass
class LayerStatistics:
    r"""What the units of one activation layer do on a batch.

    Over all examples i and units j of the layer, with :math:`z` the activation's input and
    :math:`h = f(z)` its output:

    * ``mean``, ``std``: mean and standard deviation of :math:`h` (zero-centred outputs
      have ``mean`` ≈ 0);
    * ``derivative_rms``: :math:`\sqrt{\operatorname{mean}\, f'(z)^2}`, the typical factor
      by which the layer scales the gradient passing back through it;
    * ``zero_derivative``: the fraction of entries with :math:`f'(z) = 0` exactly (a ReLU
      that is off);
    * ``saturated``: the fraction with :math:`|f'(z)| <` ``saturation_tol`` (default 0.01:
      the gradient through that entry is cut at least a hundredfold).
    """

    mean: float
    std: float
    derivative_rms: float
    zero_derivative: float
    saturated: float


def activation_derivative(activation: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """∂(Σ f(z))/∂z: f'(z) for an element-wise f; for maxout 1 where a piece wins, else 0.

    The activation sees a copy of ``z`` that is not a leaf, so an in-place module
    (``nn.ReLU(inplace=True)``) works and leaves the caller's ``z`` untouched.
    """
    with torch.enable_grad():
        leaf = z.detach().requires_grad_(True)
        (dz,) = torch.autograd.grad(activation(leaf.clone()).sum(), leaf)
    return dz


def _activation_io(model: nn.Sequential, x: torch.Tensor, batch_size: int | None):
    """Yield, per batch, a list of (module, input z, output h) for every activation layer."""
    records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        records.append((module, inputs[0], output))

    handles = [act.register_forward_hook(keep) for act in activation_layers(model)]
    try:
        batch_size = batch_size or len(x)
        for start in range(0, len(x), batch_size):
            records.clear()
            with torch.no_grad():
                model(x[start : start + batch_size])
            yield list(records)
    finally:
        for handle in handles:
            handle.remove()


def activation_statistics(
    model: nn.Sequential, x: torch.Tensor, saturation_tol: float = 0.01
) -> list[LayerStatistics]:
    """:class:`LayerStatistics` of every activation layer for the batch ``x``, input side first.

    Forward hooks on the activation modules record each one's input z and output h; the
    derivative f'(z) is then taken by autograd through the module itself, so it is the
    derivative that training would see.
    """
    (records,) = list(_activation_io(model, x, None))
    stats = []
    for module, z, h in records:
        d = activation_derivative(module, z)
        stats.append(
            LayerStatistics(
                mean=float(h.mean()),
                std=float(h.std()),
                derivative_rms=float(d.square().mean().sqrt()),
                zero_derivative=float((d == 0).float().mean()),
                saturated=float((d.abs() < saturation_tol).float().mean()),
            )
        )
    return stats


def dead_units(
    model: nn.Sequential, x: torch.Tensor, tol: float = 0.0, batch_size: int = 4096
) -> list[torch.Tensor]:
    r"""Per activation layer, a boolean mask of the units that pass no gradient for any example.

    Unit j of a layer is *dead* on the data set ``x`` when :math:`|f'(z_{ij})| \le` ``tol``
    for every example i. With ``tol = 0`` a ReLU unit is dead when its input is never
    positive: it outputs 0 everywhere and no gradient reaches its incoming weights, so
    gradient descent cannot change them (it can only come back if the layers below change
    its inputs). A positive ``tol`` also counts units that are *nearly* dead: a leaky
    ReLU whose input is never positive (slope 0.01), a smooth function far on its flat
    side. For maxout the "units" are the pieces: a piece is dead when it never wins its
    group's maximum. ``x`` is processed in batches of ``batch_size`` examples.
    """
    alive: list[torch.Tensor] | None = None
    for records in _activation_io(model, x, batch_size):
        batch_alive = [
            (activation_derivative(m, z).abs() > tol).any(dim=0).flatten() for m, z, _ in records
        ]
        alive = (
            batch_alive
            if alive is None
            else [a | b for a, b in zip(alive, batch_alive, strict=True)]
        )
    if alive is None:
        raise ValueError("x is empty")
    return [~a for a in alive]


def dead_unit_fraction(
    model: nn.Sequential, x: torch.Tensor, tol: float = 0.0, batch_size: int = 4096
) -> list[float]:
    """Per activation layer, the fraction of units that :func:`dead_units` finds dead."""
    return [float(mask.float().mean()) for mask in dead_units(model, x, tol, batch_size)]


# ---------------------------------------------------------------------------- training


@dataclass
class TrainingCurve:
    """Per evaluation point: the epoch (fractional when evaluating within an epoch), the
    mean loss and the error rate (1 − accuracy) on the whole training set, and the test
    error when a test set was given. Point 0 is the untrained model. A run whose loss
    became non-finite stops there; the remaining points are NaN."""

    epoch: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    error: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        """True when the loss became NaN or infinite."""
        return any(not math.isfinite(v) for v in self.loss)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> tuple[float, float]:
    """(mean loss, error rate) of ``model`` on ``(x, y)`` in one forward pass."""
    logits = model(x)
    loss = float(loss_fn(logits, y))
    error = float((logits.argmax(dim=1) != y).float().mean())
    return loss, error


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int = 32,
    momentum: float = 0.9,
    optimizer: str = "sgd",
    seed: int = 0,
    evals_per_epoch: int = 1,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    on_eval: Callable[[nn.Module, float], None] | None = None,
    on_backward: Callable[[nn.Module, int], None] | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> TrainingCurve:
    r"""Train ``model`` in place by mini-batch gradient descent and return its :class:`TrainingCurve`.

    ``optimizer="sgd"`` is SGD with (heavy-ball) ``momentum``,
    :math:`v \leftarrow \mu v + g,\ \theta \leftarrow \theta - \eta v`;
    ``"adam"`` is Adam (Kingma and Ba 2015) with its default betas. Each epoch visits
    the examples in an order drawn from the CPU *order* stream of ``seed``, in batches
    of ``batch_size`` (the last one may be smaller). The loss and error on the whole
    training set are measured ``evals_per_epoch`` times per epoch (after equal numbers of
    steps) and before the first step. On a CPU with a fixed number of threads the same
    arguments give the same curve, bit for bit. ``on_eval(model, epoch)``, when given, is
    called at every evaluation point, to measure anything else along the way (it must
    not change the model). ``on_backward(model, step)`` is called after every
    ``loss.backward()`` and before the optimiser's step (the gradients are in the
    parameters' ``.grad``), ``on_step(model, step)`` after every ``optimizer.step()``;
    ``step`` counts the optimiser steps from 0. Together they drive a
    :class:`actlib.TrainingMonitor`::

        train(model, x, y, epochs, lr,
              on_backward=lambda m, s: monitor.after_backward(),
              on_step=lambda m, s: monitor.after_step())
    """
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    generator = stream_generator("order", seed)
    n = len(x)
    steps_per_epoch = math.ceil(n / batch_size)
    if not 1 <= evals_per_epoch <= steps_per_epoch:
        raise ValueError(
            f"evals_per_epoch must be between 1 and the {steps_per_epoch} steps of an epoch, "
            f"got {evals_per_epoch}"
        )
    # Evaluate after these step counts within an epoch (the last one ends the epoch).
    checkpoints = {
        round(steps_per_epoch * k / evals_per_epoch): k for k in range(1, evals_per_epoch + 1)
    }
    curve = TrainingCurve()

    def record(epoch: float) -> bool:
        was_training = model.training
        model.eval()
        loss, error = evaluate(model, x, y, loss_fn)
        model.train(was_training)
        curve.epoch.append(epoch)
        curve.loss.append(loss)
        curve.error.append(error)
        if x_test is not None and y_test is not None:
            curve.test_error.append(evaluate(model, x_test, y_test, loss_fn)[1])
        if on_eval is not None:
            on_eval(model, epoch)
        return math.isfinite(loss)

    finite = record(0.0)
    model.train()
    taken = 0  # optimiser steps so far
    for epoch in range(epochs):
        if not finite:
            break
        order = torch.randperm(n, generator=generator).to(x.device)
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            loss = loss_fn(model(x[batch]), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if on_backward is not None:
                on_backward(model, taken)
            opt.step()
            if on_step is not None:
                on_step(model, taken)
            taken += 1
            if step + 1 in checkpoints:
                finite = record(epoch + checkpoints[step + 1] / evals_per_epoch)
                if not finite:
                    break
    # Pad a diverged run so every curve of the same length has the same epochs.
    total = epochs * evals_per_epoch + 1
    while len(curve.epoch) < total:
        curve.epoch.append((len(curve.epoch)) / evals_per_epoch)
        for values in (curve.loss, curve.error) + ((curve.test_error,) if curve.test_error else ()):
            values.append(math.nan)
    return curve


def epochs_to_reach(curve: TrainingCurve, threshold: float) -> float | None:
    """The first epoch at which the training error is ≤ ``threshold``; None if it never is."""
    for epoch, error in zip(curve.epoch, curve.error, strict=True):
        if error <= threshold:
            return epoch
    return None


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1 in the denominator; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


@dataclass(frozen=True)
class Spread:
    """Median and range of one quantity measured over several seeds (or shuffles)."""

    median: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.median:.3g} ({self.low:.3g}–{self.high:.3g}, n = {self.n})"


def spread(values: Sequence[float]) -> Spread:
    """:class:`Spread` of ``values``: the median (mean of the middle two for an even count),
    the smallest and largest value, and how many there are. NaN values are refused: a
    diverged run should be counted separately, not hidden in a median."""
    if len(values) == 0:
        raise ValueError("spread of no values")
    if any(math.isnan(v) for v in values):
        raise ValueError("spread of values with NaN; count diverged runs separately")
    ordered = sorted(float(v) for v in values)
    n = len(ordered)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return Spread(median=middle, low=ordered[0], high=ordered[-1], n=n)


# ------------------------------------------------------------------------------- data


def load_digits_tensors(
    test_fraction: float = 0.25, seed: int = 0, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""scikit-learn's handwritten digits (1797 images of 8×8 pixels, 10 classes), ready to train.

    Returns ``(x_train, y_train, x_test, y_test)``: float32 features of shape (n, 64) and
    int64 labels. The split is a seeded random permutation (``test_fraction`` of the
    examples held out); each pixel is standardised with the *training* mean and standard
    deviation, :math:`x \mapsto (x - \mu)/\sigma` (pixels that are constant on the training
    set keep σ = 1). The data ships inside scikit-learn: nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # scikit-learn is a course dependency, not actlib's
        raise ImportError(
            "load_digits_tensors needs scikit-learn: pip install scikit-learn"
        ) from error
    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=torch.float32)
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=stream_generator("data", seed))
    n_test = round(len(x) * test_fraction)
    test, training = order[:n_test], order[n_test:]
    mu = x[training].mean(dim=0)
    sigma = x[training].std(dim=0)
    sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    x = (x - mu) / sigma
    return tuple(t.to(device) for t in (x[training], y[training], x[test], y[test]))


# ----------------------------------------------------------------------------- tables


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown (GFM) table: pass it to ``IPython.display.Markdown`` to show it in a notebook.

    Cells are written with ``str``, so format numbers before (``f"{x:.3g}"``): what a
    notebook shows must be the same text on every machine.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, the header {len(header)}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)
