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
a Python call per layer per step. :class:`MonitorWarning` is raised (as a warning) when a
layer is more than ``warn_dead`` dead or an update:data ratio leaves ``update_range``.
"""

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .analysis import activation_derivative
from .modules import _Activation


class MonitorWarning(UserWarning):
    """A monitored quantity crossed its threshold (dead units, update:data ratio)."""


@dataclass(frozen=True)
class Histogram:
    """``counts[i]`` values fell in ``[edges[i], edges[i + 1])`` (the last bin is closed)."""

    counts: torch.Tensor
    edges: torch.Tensor


@dataclass(frozen=True)
class LayerRecord:
    """One activation layer at one sampled step."""

    step: int
    layer: str
    mean: float  #: of the outputs h
    std: float
    saturated: float  #: fraction of elements with |f'(z)| below the threshold
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


def _is_activation(module: nn.Module) -> bool:
    """actlib's activation modules and torch.nn's (classes from torch.nn.modules.activation)."""
    return isinstance(module, _Activation) or (
        type(module).__module__ == "torch.nn.modules.activation"
    )


def _histogram(values: torch.Tensor, bins: int) -> Histogram:
    """Histogram over the values' own range (works on every device: ``torch.histc``)."""
    flat = values.detach().float().flatten()
    flat = flat[flat.isfinite()]
    if flat.numel() == 0:
        return Histogram(torch.zeros(bins), torch.linspace(0, 1, bins + 1))
    low, high = flat.min().item(), flat.max().item()
    if low == high:  # one value: a bin of width 1 around it
        low, high = low - 0.5, high + 0.5
    counts = torch.histc(flat, bins=bins, min=low, max=high)
    return Histogram(counts.cpu(), torch.linspace(low, high, bins + 1))


def _std(tensor: torch.Tensor) -> float:
    return tensor.detach().double().std(correction=0).item()


class TrainingMonitor:
    """Record per-layer statistics of ``model`` every ``every`` steps (see the module docs).

    Args:
        model: any ``nn.Module``.
        every: sample on steps 0, every, 2·every, …
        layers: the modules to watch, by name; default: every activation module of
            ``model`` (actlib's and ``torch.nn``'s).
        bins: histogram bins.
        saturation_below: an element is saturated when :math:`|f'(z)|` is below this.
        warn_dead: warn when a layer has more than this fraction of dead units.
        update_range: warn when an update:data ratio falls outside this interval.
        unit_dim: the dimension of a layer's output that indexes its units.
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
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"TrainingMonitor: every must be a positive int, got {every!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"TrainingMonitor: bins must be a positive int, got {bins!r}")
        if layers is None:
            layers = {name: m for name, m in model.named_modules() if _is_activation(m)}
        if not layers:
            raise ValueError(
                "TrainingMonitor: the model has no activation module to watch; pass layers="
            )
        self.model, self.every, self.bins = model, every, bins
        self.saturation_below, self.warn_dead, self.update_range = (
            saturation_below, warn_dead, update_range,
        )  # fmt: skip
        self.layers = dict(layers)
        self.unit_dim = unit_dim
        self.weights = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
        self.step = 0
        self.layer_records: list[LayerRecord] = []
        self.parameter_records: list[ParameterRecord] = []
        self._captured: dict[str, dict[str, torch.Tensor]] = {}
        self._before: dict[str, tuple[torch.Tensor, float]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._recomputing = False
        self._handles = [
            module.register_forward_hook(self._forward_hook(name))
            for name, module in self.layers.items()
        ]

    # -- hooks --------------------------------------------------------------------------

    @property
    def sampling(self) -> bool:
        """Whether the current step is recorded."""
        return self.step % self.every == 0

    def _forward_hook(self, name: str):
        def hook(module, inputs, output):
            if not self.sampling or self._recomputing or not torch.is_grad_enabled():
                return  # the cheap path: nothing is kept
            captured = {"z": inputs[0].detach(), "h": output.detach()}
            self._captured[name] = captured
            if output.requires_grad:
                output.register_hook(lambda grad: captured.__setitem__("grad", grad.detach()))

        return hook

    def close(self) -> None:
        """Remove the hooks (the model is then as before)."""
        for handle in self._handles:
            handle.remove()
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
            derivative = self._derivative(self.layers[name], captured["z"]).abs()
            zero = derivative == 0
            if zero.dim() > 1:  # units along unit_dim, examples (and positions) along the rest
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
