r"""A training monitor: what each layer's activations, gradients and weights do, every k steps.

The diagnostics practitioners watch while a network trains, recorded from hooks on any
``nn.Module``:

* per activation layer, the **histograms** of its outputs :math:`h = f(z)` and of the
  gradients :math:`\partial L/\partial h` that reach them;
* the **saturated fraction**, elements with :math:`|f'(z)| <` ``saturation_below``, and the
  **dead fraction**, units (features along ``unit_dim``, the last dimension by default;
  pass 1 for the channels of a convolution) whose :math:`f'(z)` is 0 for every example of
  the batch: no gradient reaches their incoming weights;
* per weight matrix, the **grad:data ratio** :math:`\operatorname{std}(\nabla W) /
  \operatorname{std}(W)` and the **update:data ratio** :math:`\operatorname{std}(\Delta W) /
  \operatorname{std}(W)` of the step actually taken (around :math:`10^{-3}` is the usual
  rule of thumb for a healthy learning rate).

Usage::

    monitor = TrainingMonitor(model, every=50)
    for step in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        monitor.after_backward()    # reads activations and gradients (on sampled steps)
        optimizer.step()
        monitor.after_step()        # update:data ratios; advances the step counter

Between sampled steps the hooks return at once and nothing is kept, so the monitor costs
two Python calls per layer per step. :class:`MonitorWarning` is raised (as a warning) when a
layer is more than ``warn_dead`` dead or an update:data ratio leaves ``update_range``.

Conventions:

* :math:`f'(z)` is :math:`\partial(\sum h)/\partial z` per input element, by autograd through the
  module. For an element-wise f that is f'(z); for a gated unit it is per input of either
  half; for maxout it is 1 on the winning piece and 0 on the others, so a maxout layer with
  k pieces always reports :math:`(k-1)/k` saturated (the losing pieces): read only its
  ``dead`` fraction (a piece that never wins gets no gradient).
* Every grad-enabled forward on a sampled step is recorded, until :meth:`after_backward`:
  a module called twice in one forward gives the records ``name`` and ``name#2``; a
  grad-enabled validation forward before ``after_backward`` is recorded as well (run it
  under ``torch.no_grad()``); with gradient accumulation each micro-batch's forward is a
  call of its own (``name``, ``name#2``, …), each with the gradient that reached its output.
* An empty batch records nothing for the layers (no statistic of zero elements).
* The hooks hold the monitor weakly: a monitor that is no longer referenced removes its
  hooks; still, :meth:`close` it (or use ``with``) when done.
"""

import math
import operator
import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .analysis import activation_derivative
from .modules import Argmax, Softmax, _Activation


class MonitorWarning(UserWarning):
    """A monitored quantity crossed its threshold (dead units, update:data ratio)."""


@dataclass(frozen=True)
class Histogram:
    """``counts[i]`` values fell in ``[edges[i], edges[i + 1])`` (the last bin is closed);
    ``edges`` are float64; ``nonfinite`` values (NaN, ±inf) are counted apart, in no bin."""

    counts: torch.Tensor
    edges: torch.Tensor
    nonfinite: int = 0


@dataclass(frozen=True)
class LayerRecord:
    """One activation layer at one sampled step."""

    step: int
    layer: str
    mean: float  #: of the outputs h
    std: float
    saturated: float  #: fraction of elements with |f'(z)| below the threshold (maxout: see the module docs)
    dead: float  #: fraction of units with f'(z) = 0 for every example
    activations: Histogram
    gradients: Histogram | None  #: of ∂L/∂h; None when no gradient reached h


@dataclass(frozen=True)
class ParameterRecord:
    """One weight matrix at one sampled step."""

    step: int
    name: str
    grad_to_data: float
    update_to_data: float  #: of the optimiser step taken after this backward


#: torch.nn's element-wise (and gated) activations. Not the rest of torch.nn.modules.activation:
#: MultiheadAttention returns a tuple, and Softmax/Softmin/LogSoftmax are output layers whose
#: Jacobian is not diagonal (∂Σh/∂z = 0 for softmax: it would read as 100 % dead).
TORCH_ACTIVATIONS = (
    nn.CELU, nn.ELU, nn.GELU, nn.GLU, nn.Hardshrink, nn.Hardsigmoid, nn.Hardswish, nn.Hardtanh,
    nn.LeakyReLU, nn.LogSigmoid, nn.Mish, nn.PReLU, nn.ReLU, nn.ReLU6, nn.RReLU, nn.SELU,
    nn.Sigmoid, nn.SiLU, nn.Softplus, nn.Softshrink, nn.Softsign, nn.Tanh, nn.Tanhshrink,
    nn.Threshold,
)


def _is_activation(module: nn.Module) -> bool:
    """actlib's hidden-layer activation modules and :data:`TORCH_ACTIVATIONS` (not softmax, argmax)."""
    if isinstance(module, _Activation):
        return not isinstance(module, Softmax | Argmax)  # LogSoftmax is a Softmax
    return isinstance(module, TORCH_ACTIVATIONS)


def _histogram(values: torch.Tensor, bins: int) -> Histogram:
    """Histogram over the finite values' own range, in float64 (so that the range of float32
    values near ±3e38 cannot overflow); ``torch.histc``, on the values' device."""
    flat = values.detach().flatten()
    # float64 where the device has it (MPS has not: there the histogram is made on the CPU)
    flat = flat.to("cpu" if flat.device.type == "mps" else flat.device, torch.float64)
    finite = flat.isfinite()
    nonfinite = int(flat.numel() - finite.sum().item())
    flat = flat[finite]
    if flat.numel() == 0:
        edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
        return Histogram(torch.zeros(bins, dtype=torch.float64), edges, nonfinite)
    low, high = flat.min().item(), flat.max().item()
    if low == high:  # one value: a bin of width 1 around it (wider where ±0.5 would round away)
        pad = max(0.5, 1e-12 * abs(low))
        low, high = low - pad, high + pad
    counts = torch.histc(flat, bins=bins, min=low, max=high)
    return Histogram(counts.cpu(), torch.linspace(low, high, bins + 1, dtype=torch.float64), nonfinite)


def _index(name: str, value, minimum: int | None = None) -> int:
    """An int (numpy's too), not a bool, at least ``minimum``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"TrainingMonitor: {name} must be an int, got {value!r}") from None
    if minimum is not None and value < minimum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"TrainingMonitor: {name} must be {wanted}, got {value}")
    return value


def _real(name: str, value) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"TrainingMonitor: {name} must be a real number, got {value!r}") from None
    if math.isnan(value):
        raise ValueError(f"TrainingMonitor: {name} must not be NaN")
    return value


def _input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The activation's input z, passed by position or by keyword."""
    z = args[0] if args else next(iter(kwargs.values()), None)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"the input is {type(z).__name__}, not a tensor")
    return z


def _std(tensor: torch.Tensor) -> float:
    return tensor.detach().double().std(correction=0).item()


class TrainingMonitor:
    """Record per-layer statistics of ``model`` every ``every`` steps (see the module docs).

    Args:
        model: any ``nn.Module``.
        every: sample on steps 0, every, 2·every, …
        layers: the modules to watch: a mapping ``{name: module}`` of submodules of ``model``,
            or an iterable of names from ``model.named_modules()``; default: every activation
            module of ``model`` (actlib's and :data:`TORCH_ACTIVATIONS`). A watched module
            must take a tensor and return one of the same shape (element-wise), or be a
            gated unit or maxout.
        bins: histogram bins.
        saturation_below: an element is saturated when :math:`|f'(z)|` is below this (>= 0).
        warn_dead: warn when a layer has more than this fraction of dead units (in [0, 1]).
        update_range: ``(low, high)``, 0 <= low <= high (high may be inf): warn when an
            update:data ratio falls outside this interval.
        unit_dim: the dimension of a layer's input z that indexes its units.
    """

    def __init__(
        self,
        model: nn.Module,
        every: int = 10,
        layers: Mapping[str, nn.Module] | None = None,
        bins: int = 40,
        saturation_below: float = 0.01,
        warn_dead: float = 0.5,
        update_range: tuple[float, float] = (1e-4, 1e-2),
        unit_dim: int = -1,
    ) -> None:
        every, bins, unit_dim = _index("every", every, 1), _index("bins", bins, 1), _index("unit_dim", unit_dim)
        saturation_below, warn_dead = _real("saturation_below", saturation_below), _real("warn_dead", warn_dead)
        if not 0.0 <= saturation_below < math.inf:
            raise ValueError(f"TrainingMonitor: saturation_below must be finite and >= 0, got {saturation_below}")
        if not 0.0 <= warn_dead <= 1.0:
            raise ValueError(f"TrainingMonitor: warn_dead is a fraction in [0, 1], got {warn_dead}")
        try:
            low, high = update_range
        except (TypeError, ValueError):
            raise TypeError(f"TrainingMonitor: update_range must be a pair (low, high), got {update_range!r}") from None
        low, high = _real("update_range[0]", low), _real("update_range[1]", high)
        if not 0.0 <= low <= high:
            raise ValueError(f"TrainingMonitor: update_range must satisfy 0 <= low <= high, got {update_range}")
        self.model, self.every, self.bins, self.unit_dim = model, every, bins, unit_dim
        self.saturation_below, self.warn_dead, self.update_range = saturation_below, warn_dead, (low, high)
        self.layers = self._watched(model, layers)
        self.weights = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
        self.step = 0
        self.layer_records: list[LayerRecord] = []
        self.parameter_records: list[ParameterRecord] = []
        self._captured: dict[str, dict] = {}  # record name -> module, z, h (and grad)
        self._calls: dict[str, int] = {}  # calls of each layer since the last after_backward
        self._inputs: dict[str, list[torch.Tensor]] = {}  # z from the pre-hook, until the hook
        self._before: dict[str, tuple[torch.Tensor, float]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._recomputing = False
        self._handles = []
        for name, module in self.layers.items():
            if any(getattr(h, "_actlib_monitor", False) for h in module._forward_hooks.values()):
                warnings.warn(f"layer {name} is already watched by another TrainingMonitor that was "
                              "not closed; both record (close() the old one, or use `with`)",
                              MonitorWarning, stacklevel=2)  # fmt: skip
            pre_hook, hook = self._hooks(name)
            self._handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            self._handles.append(module.register_forward_hook(hook, with_kwargs=True))

    @staticmethod
    def _watched(model: nn.Module, layers) -> dict[str, nn.Module]:
        """``layers`` as ``{name: module}``, every module one of ``model``'s."""
        if layers is None:
            layers = {name: m for name, m in model.named_modules() if _is_activation(m)}
            if not layers:
                raise ValueError("TrainingMonitor: the model has no activation module to watch; pass layers=")
            return layers
        named = dict(model.named_modules())
        if isinstance(layers, Mapping):
            ours = {id(m) for m in named.values()}
            for name, module in layers.items():
                if not isinstance(module, nn.Module) or id(module) not in ours:
                    raise ValueError(f"TrainingMonitor: layers[{name!r}] is not a submodule of model")
            layers = dict(layers)
        elif isinstance(layers, str) or not isinstance(layers, Iterable):
            raise TypeError("TrainingMonitor: layers must be a mapping {name: module} or an iterable "
                            f"of module names, got {layers!r}")  # fmt: skip
        else:
            layers = list(layers)
            unknown = [n for n in layers if n not in named]
            if unknown:
                raise ValueError(f"TrainingMonitor: no module named {unknown[0]!r} in model "
                                 f"(names: {', '.join(n for n in named if n) or 'none'})")  # fmt: skip
            layers = {name: named[name] for name in layers}
        if not layers:
            raise ValueError("TrainingMonitor: layers is empty")
        return layers

    def __del__(self) -> None:  # an unreferenced monitor stops sampling (see the module docs)
        self.close()

    # -- hooks --------------------------------------------------------------------------

    @property
    def sampling(self) -> bool:
        """Whether the current step is recorded."""
        return self.step % self.every == 0

    def _recording(self) -> bool:
        return self.sampling and not self._recomputing and torch.is_grad_enabled()

    def _hooks(self, name: str):
        """The pre-hook keeps z (a copy for an in-place module, whose forward overwrites z
        with h); the hook records (z, h) per call and asks for ∂L/∂h. They hold the monitor
        weakly, so that a forgotten monitor does not keep recording."""
        owner = weakref.ref(self)

        def pre_hook(module, args, kwargs):
            monitor = owner()
            if monitor is None or not monitor._recording():
                return  # the cheap path: nothing is kept
            try:
                z = _input(args, kwargs).detach()
            except TypeError as error:
                raise TypeError(f"TrainingMonitor: layer {name} ({type(module).__name__}): {error}") from None
            if getattr(module, "inplace", False):
                z = z.clone()
            monitor._inputs.setdefault(name, []).append(z)

        def hook(module, args, kwargs, output):
            monitor = owner()
            if monitor is None or not monitor._inputs.get(name):
                return
            z = monitor._inputs[name].pop()
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"TrainingMonitor: layer {name} ({type(module).__name__}) returned a "
                    f"{type(output).__name__}, not a tensor: watch only activation modules (layers=)"
                )
            calls = monitor._calls[name] = monitor._calls.get(name, 0) + 1
            captured = {"module": module, "z": z, "h": output.detach()}
            monitor._captured[name if calls == 1 else f"{name}#{calls}"] = captured
            if output.requires_grad:
                output.register_hook(lambda grad: captured.__setitem__("grad", grad.detach()))

        pre_hook._actlib_monitor = hook._actlib_monitor = True
        return pre_hook, hook

    def close(self) -> None:
        """Remove the hooks (the model is then as before)."""
        for handle in getattr(self, "_handles", ()):
            handle.remove()
        if hasattr(self, "_handles"):
            self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- measurements -------------------------------------------------------------------

    def _derivative(self, module: nn.Module, z: torch.Tensor) -> torch.Tensor:
        """f'(z) by autograd through the module, with this monitor's own hook silenced."""
        self._recomputing = True
        try:
            return activation_derivative(module, z)
        finally:
            self._recomputing = False

    def after_backward(self) -> None:
        """Record the layers and the grad:data ratios, on a sampled step (after ``backward``)."""
        if not self.sampling:
            return
        for name, captured in self._captured.items():
            z = captured["z"]
            if z.numel() == 0:  # an empty batch: no statistic to record
                continue
            derivative = self._derivative(captured["module"], z).abs()
            zero = derivative == 0
            if zero.dim() > 1:  # units along unit_dim, examples (and positions) along the rest
                if not -zero.dim() <= self.unit_dim < zero.dim():
                    raise ValueError(f"TrainingMonitor: unit_dim={self.unit_dim} is out of range for "
                                     f"layer {name}, whose input has shape {tuple(z.shape)}")  # fmt: skip
                per_unit = zero.movedim(self.unit_dim, -1).reshape(-1, zero.shape[self.unit_dim])
            else:
                per_unit = zero.reshape(-1, 1)
            h, grad = captured["h"], captured.get("grad")
            record = LayerRecord(
                step=self.step,
                layer=name,
                mean=h.double().mean().item(),
                std=_std(h),
                saturated=(derivative < self.saturation_below).double().mean().item(),
                dead=per_unit.all(dim=0).double().mean().item(),
                activations=_histogram(h, self.bins),
                gradients=None if grad is None else _histogram(grad, self.bins),
            )
            self.layer_records.append(record)
            if record.dead > self.warn_dead:
                self._warn(name, "dead", f"layer {name}: {record.dead:.0%} of its units are dead "
                           f"at step {self.step} (f'(z) = 0 for every example of the batch)")  # fmt: skip
            else:
                self._warned.discard((name, "dead"))
        self._captured.clear()
        self._calls.clear()
        self._inputs.clear()
        for name, parameter in self.weights.items():
            if parameter.grad is not None:
                data = _std(parameter)
                grad_to_data = _std(parameter.grad) / data if data > 0 else math.inf
                self._before[name] = parameter.detach().clone(), grad_to_data

    def after_step(self) -> None:
        """Record the update:data ratios of the step just taken; then advance the step."""
        low, high = self.update_range
        for name, (before, grad_to_data) in self._before.items():
            parameter = self.weights[name]
            data = _std(before)
            update_to_data = _std(parameter.detach() - before) / data if data > 0 else math.inf
            self.parameter_records.append(
                ParameterRecord(self.step, name, grad_to_data, update_to_data)
            )
            if not low <= update_to_data <= high:
                self._warn(name, "update", f"{name}: update:data ratio {update_to_data:.1e} at "
                           f"step {self.step}, outside [{low:g}, {high:g}] (about 1e-3 is usual)")  # fmt: skip
            else:
                self._warned.discard((name, "update"))
        self._before.clear()
        self.step += 1

    def _warn(self, key: str, kind: str, message: str) -> None:
        """Warn once when a condition starts to hold (again), not at every sampled step."""
        if (key, kind) not in self._warned:
            self._warned.add((key, kind))
            warnings.warn(message, MonitorWarning, stacklevel=3)

    # -- reading the records --------------------------------------------------------------

    def history(self, layer_or_parameter: str, field: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one recorded field, e.g. ``("3", "dead")`` or ``("0.weight",
        "update_to_data")``."""
        records = [r for r in self.layer_records if r.layer == layer_or_parameter] or [
            r for r in self.parameter_records if r.name == layer_or_parameter
        ]
        if not records:
            raise KeyError(f"nothing recorded for {layer_or_parameter!r}")
        return [r.step for r in records], [getattr(r, field) for r in records]
