"""The book's one figure style, and the function-and-derivative plot every chapter uses.

The derivative is taken by autograd *through actlib's own Function*, so the plot shows
what the hand-derived backward computes, not a formula typed in again.
"""

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
#: chapters: squashing functions blue, rectifiers red/orange, smooth rectifiers green.
FAMILY_COLOURS = {
    "sigmoid": "#08306b", "tanh": "#2171b5", "softsign": "#6baed6",
    "relu": "#a50f15", "leaky_relu": "#ef3b2c", "prelu": "#fc9272",
    "elu": "#7f2704", "selu": "#f16913", "maxout": "#fdae6b",
    "softplus": "#00441b", "silu": "#238b45", "gelu": "#74c476", "mish": "#a1d99b",
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
