"""The book's one figure style, and the function-and-derivative plot every chapter uses.

The derivative is taken by autograd *through actlib's own Function*, so the plot shows
what the hand-derived backward computes, not a formula typed in again.
"""

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
    "legend.frameon": False,
    "lines.linewidth": 2.0,
}

#: One colour per hidden-layer activation, by family, so a curve keeps its colour across
#: chapters: squashing functions blue, rectifiers red/orange, smooth rectifiers green,
#: gated units purple, the piecewise-linear hard activations grey.
FAMILY_COLOURS = {
    "sigmoid": "#08306b", "tanh": "#2171b5", "softsign": "#6baed6",
    "relu": "#a50f15", "squared_relu": "#67000d", "leaky_relu": "#ef3b2c",
    "prelu": "#fc9272", "rrelu": "#fcbba1",
    "elu": "#7f2704", "celu": "#d94801", "selu": "#f16913", "maxout": "#fdae6b",
    "softplus": "#00441b", "silu": "#238b45", "gelu": "#74c476", "quick_gelu": "#41ab5d",
    "mish": "#a1d99b",
    "glu": "#3f007d", "reglu": "#6a51a3", "geglu": "#9e9ac8", "swiglu": "#807dba",
    "relu6": "#252525", "hardtanh": "#525252", "hardsigmoid": "#737373", "hardswish": "#969696",
}  # fmt: skip


def use_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a notebook)."""
    plt.rcParams.update(STYLE)


def function_and_derivative(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Values f(x) and derivatives f'(x) of an element-wise ``fn``, by autograd, as numpy.

    Since f acts element-wise, the gradient of Σ f(x_i) with respect to x_i is f'(x_i).
    """
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach().cpu().double().numpy(), dy.cpu().double().numpy()


def _one_sided_derivatives(
    fn: Callable[[torch.Tensor], torch.Tensor], kink: float
) -> tuple[float, float, float]:
    """f′ just left of ``kink``, at it (autograd's, i.e. PyTorch's convention) and just right."""
    at = torch.tensor(float(kink), dtype=torch.float64)
    step = 1e-9 * max(1.0, abs(float(kink)))
    points = torch.stack([at - step, at, at + step])
    _, dy = function_and_derivative(fn, points)
    return float(dy[0]), float(dy[1]), float(dy[2])


def plot_function_and_derivative(
    fn: Callable[[torch.Tensor], torch.Tensor],
    ax: plt.Axes | None = None,
    x_range: tuple[float, float] = (-6.0, 6.0),
    label: str | None = None,
    num: int = 1201,
    color: str | None = None,
    kinks: Sequence[float] = (),
    derivative_label: str | None = None,
) -> plt.Axes:
    """Plot f (solid) and f′ (dashed, same colour) on ``ax`` over ``x_range``.

    ``label`` names f in the legend as ``label(x)``; use mathematical names
    (``r"$\\mathrm{ReLU}$"``, ``"σ"``), not code names. The derivative is labelled
    ``derivative_label``, by default ``label′(x)``.

    ``kinks`` lists the points where f′ jumps (ReLU's 0). There the dashed curve is
    broken instead of joined by a vertical segment, and the one-sided limits are marked
    with open dots, the value autograd returns at the kink itself (PyTorch's convention,
    e.g. ReLU′(0) = 0) with a filled dot.
    """
    if ax is None:
        _, ax = plt.subplots()
    x = torch.linspace(*x_range, num, dtype=torch.float64)
    y, dy = function_and_derivative(fn, x)
    xs = x.numpy()
    name = label or getattr(fn, "__name__", "f")
    (line,) = ax.plot(xs, y, color=color, label=f"{name}(x)")
    colour = line.get_color()
    xd, dyd = xs, dy
    for kink in sorted(kinks):
        # Break the dashed line at the jump: a NaN point is not drawn. A grid point exactly
        # at the kink is dropped first (its dot is drawn below), or it would be joined to
        # one side by a near-vertical segment.
        off_kink = xd != kink
        xd, dyd = xd[off_kink], dyd[off_kink]
        cut = int(np.searchsorted(xd, kink))
        xd = np.insert(xd, cut, kink)
        dyd = np.insert(dyd, cut, np.nan)
    ax.plot(xd, dyd, color=colour, linestyle="--", label=derivative_label or f"{name}′(x)")
    for kink in kinks:
        left, at, right = _one_sided_derivatives(fn, kink)
        for limit in {left, right} - {at}:
            ax.plot([kink], [limit], "o", markerfacecolor="white", color=colour, zorder=3)
        ax.plot([kink], [at], "o", color=colour, zorder=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x) and f′(x)")
    ax.legend()
    return ax


def plot_layer_histograms(monitor, step: int | None = None, kind: str = "activations",
                          ax: plt.Axes | None = None) -> plt.Axes:  # fmt: skip
    """One histogram curve per layer of an :class:`actlib.monitor.TrainingMonitor` at ``step``.

    ``kind`` is ``"activations"`` (the outputs h) or ``"gradients"`` (∂L/∂h); ``step``
    defaults to the last sampled one. Each curve is the fraction of the layer's values per
    bin, drawn at the bin centres, so layers of different sizes compare.
    """
    if kind not in ("activations", "gradients"):
        raise ValueError(f"kind must be 'activations' or 'gradients', got {kind!r}")
    if not monitor.layer_records:
        raise ValueError("the monitor has recorded nothing yet")
    step = max(r.step for r in monitor.layer_records) if step is None else step
    records = [r for r in monitor.layer_records if r.step == step]
    if not records:
        raise ValueError(f"no record at step {step}")
    if ax is None:
        _, ax = plt.subplots()
    for record in records:
        histogram = getattr(record, kind)
        if histogram is None:
            continue
        centres = (histogram.edges[1:] + histogram.edges[:-1]) / 2
        share = histogram.counts / histogram.counts.sum().clamp_min(1)
        ax.plot(centres.numpy(), share.numpy(), label=f"layer {record.layer}")
    ax.set_xlabel("h" if kind == "activations" else r"$\partial L / \partial h$")
    ax.set_ylabel("fraction of values")
    ax.set_title(f"{kind} at step {step}")
    ax.legend(loc="upper right")
    return ax


def plot_ratio_history(monitor, field: str = "update_to_data", ax: plt.Axes | None = None,
                       ) -> plt.Axes:  # fmt: skip
    """log10 of each weight's update:data (or ``"grad_to_data"``) ratio over the sampled steps,
    with the rule-of-thumb 1e-3 as a dashed line."""
    if field not in ("update_to_data", "grad_to_data"):
        raise ValueError(f"field must be 'update_to_data' or 'grad_to_data', got {field!r}")
    if ax is None:
        _, ax = plt.subplots()
    for name in monitor.weights:
        records = [r for r in monitor.parameter_records if r.name == name]
        if records:
            values = [math.log10(getattr(r, field)) for r in records]
            ax.plot([r.step for r in records], values, label=name)
    if field == "update_to_data":
        ax.axhline(-3, color="black", linestyle="--", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 {field.replace('_to_', ':')}")
    ax.legend(loc="upper right")
    return ax


def plot_binned_layers(rows, ax: plt.Axes | None = None, xlabel: str = "h",
                       title: str | None = None, cmap: str = "viridis") -> plt.Axes:  # fmt: skip
    """One curve per layer from stored histograms, e.g. the rows of a CSV in ``book/data/``.

    Each row is a mapping with ``layer``, ``low``, ``high`` and ``counts``: the fraction of
    the layer's values in each of ``len(counts)`` equal bins over [low, high] (a sequence of
    numbers, or one space-separated string, as a CSV stores it). As in
    :func:`plot_layer_histograms`, each curve is drawn at the bin centres; the layers are
    coloured from light to dark along ``cmap``, input side first (ordered by ``layer``).
    """
    rows = sorted(rows, key=lambda r: int(r["layer"]))
    if not rows:
        raise ValueError("no histogram rows to plot")
    if ax is None:
        _, ax = plt.subplots()
    colours = plt.get_cmap(cmap)(np.linspace(0.9, 0.1, len(rows)))
    for row, colour in zip(rows, colours, strict=True):
        counts = row["counts"]
        share = np.array(counts.split() if isinstance(counts, str) else counts, dtype=float)
        edges = np.linspace(float(row["low"]), float(row["high"]), len(share) + 1)
        ax.plot((edges[1:] + edges[:-1]) / 2, share, color=colour, label=f"layer {row['layer']}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of values")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_histogram_grid(rows, symbol: str = "h", log_gradients: bool = True):
    """The 2 × 2 figure of one training run: activations (top) and gradients ∂L/∂h (bottom)
    per layer, at initialisation (left) and after training (right).

    ``rows`` are stored histograms (see :func:`plot_binned_layers`) of one run, each with a
    ``moment`` (``"init"`` or ``"final"``) and a ``kind`` (``"activations"`` or
    ``"gradients"``). ``log_gradients`` draws the gradient panels on a logarithmic y axis, so
    the narrow spike of a layer whose gradients have shrunk does not hide the others.
    Returns ``(figure, axes)``.
    """
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for column, (moment, when) in enumerate((("init", "at initialisation"),
                                             ("final", "after training"))):  # fmt: skip
        for line, kind in enumerate(("activations", "gradients")):
            ax = axes[line, column]
            chosen = [r for r in rows if r["moment"] == moment and r["kind"] == kind]
            xlabel = f"${symbol}$" if kind == "activations" else rf"$\partial L/\partial {symbol}$"
            plot_binned_layers(chosen, ax=ax, xlabel=xlabel, title=f"{kind} {when}")
            if kind == "gradients":
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
                if log_gradients:
                    ax.set_yscale("log")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right")  # beside the panels, covering no curve
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    return fig, axes
