r"""Mean-field signal propagation at initialisation (Poole et al. 2016; Schoenholz et al. 2017).

A deep perceptron :math:`z_l = W_l h_{l-1} + b_l`, :math:`h_l = f(z_l)` with
:math:`W_l \sim N(0, \sigma_w^2 / n_{l-1})` and :math:`b_l \sim N(0, \sigma_b^2)` has, in
the limit of wide layers, Gaussian pre-activations whose statistics obey one-dimensional
recursions. With :math:`z \sim N(0, 1)`:

* the **length map** (the mean square pre-activation of the next layer)

  .. math:: q_{l+1} = \mathcal{V}(q_l) = \sigma_w^2\, \mathrm{E}_z\bigl[f(\sqrt{q_l}\, z)^2\bigr] + \sigma_b^2,

  with its stable fixed point :math:`q^*` (:func:`length_map`, :func:`fixed_point`);
* the **correlation map** of two inputs whose pre-activations both have length
  :math:`q` and correlation :math:`c`,

  .. math:: c_{l+1} = \mathcal{C}(c_l) = \frac{\sigma_w^2\, \mathrm{E}[f(u_1) f(u_2)] + \sigma_b^2}
            {\mathcal{V}(q)}, \qquad
            u_1 = \sqrt{q}\, z_1,\; u_2 = \sqrt{q}\,\bigl(c z_1 + \sqrt{1 - c^2}\, z_2\bigr),

  whose fixed point :math:`c^*` is 1 in the ordered phase and below 1 in the chaotic
  phase (:func:`correlation_map`, :func:`correlation_fixed_point`);
* the slope of :math:`\mathcal{C}` at :math:`c = 1`, which is also the factor by which
  the mean square gradient :math:`\lVert \partial \mathcal{L}/\partial z_l \rVert^2`
  grows per layer on the way back,

  .. math:: \chi_1 = \sigma_w^2\, \mathrm{E}_z\bigl[f'(\sqrt{q^*}\, z)^2\bigr]

  (:func:`chi1`); :math:`\chi_1 = 1` is the boundary between order and chaos
  (:func:`critical_sigma_w2`);
* the **gain** that keeps the forward length unchanged at :math:`\sigma_b = 0`,
  :math:`\sigma_w^2 = q / \mathrm{E}[f(\sqrt q\, z)^2]` (:func:`gain`), the analogue of
  :func:`torch.nn.init.calculate_gain`.

The expectations are quadratures in float64: composite Gauss–Legendre over
:math:`u = \sqrt q\, z` on :math:`[-11\sqrt q, 11\sqrt q]` with panel edges at every integer
of :math:`[-8, 8]`, where the catalog's kinks lie (ReLU's 0, hardtanh's ±1, hardswish's ±3,
ReLU6's 6), so a kink costs no accuracy (a plain Gauss–Hermite rule converges only
algebraically across one). The activation is evaluated through actlib: ``f`` is a catalog
name (``"tanh"``, ``"swiglu"`` …), an ``nn.Module`` (copied to float64 on the CPU and
evaluated in eval mode; the caller's module is left as it is) or a callable that takes a
float64 torch tensor and returns the float64 tensor of f applied element by element (a
function that is not, such as softmax, or that needs numpy, is refused with a TypeError or
ValueError), and its derivative comes from autograd through actlib's hand-written backward.

A unit that reads several inputs, a gated unit :math:`g(a)\, b` (GLU, ReGLU, GEGLU,
SwiGLU: the linear layer before it is twice as wide, each half with fan-in :math:`n`) or
maxout, is integrated over as many independent :math:`N(0, q)` inputs; its
:math:`f'^2` is the squared norm of its gradient with respect to all of them, which is
what the backward pass multiplies by. For a gated unit with independent halves this gives
:math:`\mathrm{E}[h^2] = q\, \mathrm{E}[g(\sqrt q\, z)^2]`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch import nn

from .analysis import activation_factory, inputs_per_output

__all__ = [
    "expectation",
    "length_map",
    "fixed_point",
    "correlation_map",
    "correlation_fixed_point",
    "chi1",
    "critical_sigma_w2",
    "gain",
    "DivergenceError",
]

#: Gauss–Hermite nodes per dimension for the correlation map of a unit with k > 1 inputs.
NODES = {4: 20}

#: Pieces of the 1-D rule: Gauss–Legendre on panels over u in [-R, R], R = RADIUS·√q, with
#: panel edges at every integer |u| <= KINKS, where the catalog's kinks lie (0, ±1, ±3, 6).
RADIUS, PANELS, KINKS, LEGENDRE = 11.0, 48, 8, 10
#: The coarser rule per coordinate of a unit with several inputs (gated units, maxout).
PANELS_MULTI, LEGENDRE_MULTI = 16, 6


class DivergenceError(ValueError):
    """The length map has no finite stable fixed point: q grows without bound."""


@cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _panel_rule(edges: np.ndarray, n: int = LEGENDRE) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre points and weights on the panels between sorted ``edges`` (..., p+1)."""
    x, w = _legendre(n)
    left, right = edges[..., :-1, None], edges[..., 1:, None]
    half = 0.5 * (right - left)
    points = (left + right) * 0.5 + half * x
    weights = half * w
    return points.reshape(*edges.shape[:-1], -1), weights.reshape(*edges.shape[:-1], -1)


def _normal_rule(q: float, panels: int = PANELS, n: int = LEGENDRE) -> tuple[np.ndarray, np.ndarray]:
    """Points u and weights for E over u ~ N(0, q) (a point mass at 0 when q = 0).

    Composite Gauss–Legendre with panel edges at the integers, so a kink of f at an
    integer (ReLU's 0, hardtanh's ±1, hardswish's ±3, ReLU6's 6) costs no accuracy.
    """
    if q == 0.0:
        return np.zeros(1), np.ones(1)
    radius = RADIUS * math.sqrt(q)
    kinks = np.arange(-KINKS, KINKS + 1, dtype=np.float64)
    edges = np.unique(np.concatenate([np.linspace(-radius, radius, panels + 1),
                                      kinks[np.abs(kinks) < radius]]))
    u, w = _panel_rule(edges, n)
    w = w * np.exp(-0.5 * u * u / q) / math.sqrt(2.0 * math.pi * q)
    return u, w / w.sum()


def _product_rule(q: float, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D rule in each of ``dims`` independent coordinates: points (m, dims), weights (m,)."""
    u, w = _normal_rule(q) if dims == 1 else _normal_rule(q, PANELS_MULTI, LEGENDRE_MULTI)
    points = np.stack(np.meshgrid(*([u] * dims), indexing="ij"), -1).reshape(-1, dims)
    weights = np.ones(1)
    for _ in range(dims):
        weights = np.multiply.outer(weights, w).reshape(-1)
    return points, weights


@cache
def _hermite_grid(dims: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss–Hermite grid for E over N(0, I_dims): points (m, dims), weights (m,)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / math.sqrt(2.0 * math.pi)
    points = np.stack(np.meshgrid(*([x] * dims), indexing="ij"), -1).reshape(-1, dims)
    weights = np.ones(1)
    for _ in range(dims):
        weights = np.multiply.outer(weights, w).reshape(-1)
    return points, weights


class _Unit:
    """An activation evaluated in float64 on the CPU through actlib, with the number of inputs
    it reads.

    A module is copied (the caller's module keeps its dtype and device) and put in eval mode
    (RReLU's slope is then its mean, not random). A callable must take a float64 torch tensor
    and return one of the same shape, element by element; gated units and maxout are
    recognised as modules only (actlib's and ``torch.nn.GLU``). Raises TypeError (ValueError
    for a function that is not element-wise, such as softmax) when f does not fit.
    """

    def __init__(self, f) -> None:
        if isinstance(f, str):
            f = activation_factory(f)()
        if isinstance(f, nn.Module):
            self.inputs = 2 if isinstance(f, nn.GLU) else inputs_per_output(f)
            self.fn = copy.deepcopy(f).to("cpu", torch.float64).eval()
        elif callable(f):
            self.inputs = 1
            self.fn = f
        else:
            raise TypeError(f"f must be a catalog name, an nn.Module or a callable, not {type(f).__name__}")
        self._check_element_wise()

    def _check_element_wise(self) -> None:
        """Each row of points is one unit: f on all rows must be f on each half of them
        (softmax, which normalises over its input, is not)."""
        probe = torch.linspace(-2.5, 3.0, 8 * self.inputs, dtype=torch.float64).reshape(8, self.inputs)
        what = f"{self.fn!r}" if isinstance(self.fn, nn.Module) else getattr(self.fn, "__name__", repr(self.fn))
        try:
            whole, _ = self.values_and_slopes(probe)  # with autograd, as the quadratures use it
            halves = torch.cat([self(probe[:4]), self(probe[4:])])
        # Any failure at all means f does not fit the theory: say why, whatever it was.
        except Exception as error:  # noqa: BLE001
            raise TypeError(
                f"{what} cannot be evaluated as a unit of the mean-field theory ({error}): f must "
                "take a float64 torch tensor and return a torch tensor, one output per unit "
                "(element-wise, or a gated unit / maxout module)"
            ) from error
        if not torch.allclose(whole, halves, rtol=1e-10, atol=1e-300, equal_nan=True):
            raise ValueError(
                f"{what} is not element-wise: its value at one point depends on the other points "
                "(softmax-like); the mean-field theory needs f applied to each unit alone"
            )

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """u: (m, inputs) float64 -> outputs (m,)."""
        out = self.fn(u if self.inputs > 1 else u[:, 0])
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"it returned a {type(out).__name__}, not a torch tensor")
        if out.dtype != torch.float64:
            raise TypeError(f"it returned {out.dtype} for float64 input; compute in float64")
        out = out.reshape(u.shape[0], -1)
        if out.shape[1] != 1:
            raise ValueError(
                f"the activation maps {self.inputs} input(s) to {out.shape[1]} outputs; a "
                "unit of the mean-field theory has one output"
            )
        return out[:, 0]

    def values_and_slopes(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(u) and the squared norm of ∂f/∂u per point, by autograd."""
        with torch.enable_grad():
            u = u.detach().clone().requires_grad_(True)
            out = self(u)
            (grad,) = torch.autograd.grad(out.sum(), u)
        return out.detach(), (grad**2).sum(1)


def _check_float(name: str, value, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool | str | bytes):  # float() would take them: True as 1, "1" as 1.0
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {relation} {minimum}, got {value}")
    return value


def expectation(f, q: float = 1.0, *, squared_slope: bool = False) -> float:
    r""":math:`\mathrm{E}[f(\sqrt q\, z)^2]`, or :math:`\mathrm{E}[\lVert\nabla f(\sqrt q\, z)\rVert^2]`
    with ``squared_slope=True``, for :math:`z \sim N(0, I_k)`, k the unit's number of inputs."""
    q = _check_float("q", q)
    unit = _Unit(f)
    points, weights = _product_rule(q, unit.inputs)
    values, slopes = unit.values_and_slopes(torch.from_numpy(points))
    integrand = slopes if squared_slope else values**2
    result = float(integrand.numpy() @ weights)
    if not math.isfinite(result):
        raise DivergenceError(f"the expectation is not finite at q = {q}")
    return result


def length_map(f, q: float, sigma_w2: float, sigma_b2: float) -> float:
    r"""The length map :math:`\sigma_w^2\, \mathrm{E}[f(\sqrt q\, z)^2] + \sigma_b^2`."""
    sigma_w2 = _check_float("sigma_w2", sigma_w2, strict=True)
    sigma_b2 = _check_float("sigma_b2", sigma_b2)
    return sigma_w2 * expectation(f, q) + sigma_b2


def _iterate(step: Callable[[float], float], x0: float, what: str, *, tol: float, max_iter: int,
             upper: float | None = None) -> float:
    r"""Fixed point of ``step`` by plain iteration (which lands on the stable fixed point),
    polished by Steffensen's method (Aitken's :math:`\Delta^2`) past the transient.

    Converged when the estimated *error* :math:`|\Delta| / (1 - s)` is at most
    ``tol·(1 + |x|)``, with :math:`\Delta` the last step and :math:`s` the slope of ``step``
    estimated from two successive steps (a small step alone proves nothing where s is near
    1). Raises DivergenceError past 1e12, when the slope is 1 to within 1e-9 (e.g. ReLU at
    :math:`\sigma_w^2 = 2`, :math:`q_l = q_0 + l \sigma_b^2`: no stable fixed point, or one too
    weakly attracting to be found to ``tol``) or if not converged in ``max_iter`` steps.
    """
    tol = _check_float("tol", tol, strict=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    bound = 1e12 if upper is None else upper

    def checked(value: float, i: int) -> float:
        if not math.isfinite(value) or abs(value) > 1e12:
            raise DivergenceError(f"{what} diverges (reached {value:.3g} after {i + 1} iterations): "
                                  "no finite stable fixed point")  # fmt: skip
        return value

    def converged(delta: float, slope: float, x: float) -> bool:
        return slope < 1.0 and abs(delta) <= tol * (1.0 + abs(x)) * (1.0 - slope)

    x, previous, slope = x0, None, math.inf
    for i in range(max_iter):
        new = checked(step(x), i)
        delta = new - x
        if delta == 0.0:
            return new
        if previous is not None:
            slope = delta / previous
            if converged(delta, slope, new):
                return new
        if i >= 100:  # past the transient: accelerate (Steffensen / Aitken Δ²)
            second = checked(step(new), i)
            slope = (second - new) / delta
            if abs(slope - 1.0) <= 1e-9:
                raise DivergenceError(
                    f"{what} has slope 1 (to 1e-9) at {new:.6g} after {i + 1} iterations: no "
                    "stable fixed point (the value grows by a constant step), or one too weakly "
                    "attracting to find"
                )
            if slope < 1.0 - 1e-9:  # else the Δ² denominator (s - 1)·Δ is round-off
                guess = x + delta / (1.0 - slope)
                if math.isfinite(guess) and 0.0 <= guess <= bound:
                    residual = step(guess) - guess
                    if converged(residual, slope, guess):
                        return guess
            new, delta = second, second - new
        x, previous = new, delta
    raise DivergenceError(f"{what} did not converge in {max_iter} iterations (last value {x:.6g}, "
                          f"slope per iteration {slope:.6g})")


def fixed_point(f, sigma_w2: float, sigma_b2: float, *, q0: float = 1.0, tol: float = 1e-12,
                max_iter: int = 5000) -> float:
    r"""The fixed point :math:`q^*` of the length map reached from ``q0`` (the stable one).

    Raises :class:`DivergenceError` when the iteration grows without bound (e.g. ReLU with
    :math:`\sigma_w^2 > 2`) or does not settle.
    """
    q0 = _check_float("q0", q0)
    _check_float("sigma_w2", sigma_w2, strict=True)
    _check_float("sigma_b2", sigma_b2)
    return _iterate(lambda q: length_map(f, q, sigma_w2, sigma_b2), q0,
                    f"the length map (sigma_w2 = {sigma_w2}, sigma_b2 = {sigma_b2})",
                    tol=tol, max_iter=max_iter)


def _multi_input_moments(unit: _Unit, c: float, q: float) -> tuple[float, float]:
    """E[f(u_1) f(u_2)] and sqrt(E[f(u_1)²] E[f(u_2)²]) on one 2k-dimensional Gauss–Hermite
    grid, for a unit with k > 1 inputs (approximate where f has kinks)."""
    k = unit.inputs
    points, weights = _hermite_grid(2 * k, NODES.get(2 * k, 12))
    z1, z2 = points[:, :k], points[:, k:]
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (c * z1 + math.sqrt(max(0.0, 1.0 - c * c)) * z2)
    with torch.no_grad():
        f1, f2 = unit(torch.from_numpy(u1)).numpy(), unit(torch.from_numpy(u2)).numpy()
    return float((f1 * f2) @ weights), math.sqrt(float((f1 * f1) @ weights) * float((f2 * f2) @ weights))


def _cross_moment(unit: _Unit, c: float, q: float) -> float:
    """E[f(u_1) f(u_2)] for pre-activations of length q and correlation c (one input per unit)."""
    u1, w1 = _normal_rule(q)
    spread = q * (1.0 - c * c)
    with torch.no_grad():
        f1 = unit(torch.from_numpy(u1[:, None]))
        if spread <= 1e-300:  # u_2 = c u_1
            f2 = unit(torch.from_numpy(c * u1[:, None]))
            return float((f1 * f2).numpy() @ w1)
        # u_2 | u_1 ~ N(c u_1, q (1 - c²)): per outer point a panel rule with edges at the integers
        scale = math.sqrt(spread)
        centre = c * u1[:, None]
        lo, hi = centre - RADIUS * scale, centre + RADIUS * scale
        uniform = lo + (hi - lo) * np.linspace(0.0, 1.0, PANELS + 1)
        kinks = np.clip(np.arange(-KINKS, KINKS + 1, dtype=np.float64), lo, hi)
        edges = np.sort(np.concatenate([uniform, kinks], axis=1), axis=1)
        u2, w2 = _panel_rule(edges)
        w2 = w2 * np.exp(-0.5 * ((u2 - centre) / scale) ** 2)
        w2 = w2 / w2.sum(axis=1, keepdims=True)
        f2 = unit(torch.from_numpy(u2.reshape(-1, 1))).numpy().reshape(u2.shape)
        return float(f1.numpy() @ ((f2 * w2).sum(axis=1) * w1))


def correlation_map(f, c: float, q: float, sigma_w2: float, sigma_b2: float) -> float:
    r"""The correlation of the next layer's pre-activations, :math:`\mathcal{C}(c)`, for two
    inputs whose pre-activations both have length ``q`` and correlation ``c``.

    :math:`\mathrm{E}[f(u_1) f(u_2)]` is an outer rule over :math:`u_1 \sim N(0, q)` and an
    inner one over :math:`u_2 \mid u_1 \sim N(c u_1, q(1 - c^2))`, both with panel edges at
    the integers (kinks cost no accuracy). For a unit with k > 1 inputs (gated, maxout) it
    is a 2k-dimensional Gauss–Hermite grid, and the denominator is
    :math:`\sigma_w^2 \sqrt{\mathrm{E}[f(u_1)^2]\, \mathrm{E}[f(u_2)^2]} + \sigma_b^2` on the same
    grid (:math:`\mathcal{V}(q)` up to the grid's error), so that :math:`\mathcal{C}(1) = 1`
    and :math:`|\mathcal{C}| \le 1` exactly (Cauchy–Schwarz). The grid is exact for the
    linear half and coarse for a steep gate: for GLU and GEGLU the map is accurate to about
    1e-6 at q = 1, 1e-4 at q = 3, 1e-3 at q = 10 and 4e-3 at q = 30, and to about 1e-3 at kinks.
    """
    try:
        c = float(c)
    except (TypeError, ValueError):
        raise TypeError(f"c must be a real number, got {c!r}") from None
    if not math.isfinite(c) or abs(c) > 1.0:
        raise ValueError(f"c must be a correlation in [-1, 1], got {c}")
    q = _check_float("q", q)
    sigma_w2 = _check_float("sigma_w2", sigma_w2, strict=True)
    sigma_b2 = _check_float("sigma_b2", sigma_b2)
    unit = _Unit(f)
    if unit.inputs > 1:
        cross, second = _multi_input_moments(unit, c, q)
        denominator = sigma_w2 * second + sigma_b2
    else:
        cross, denominator = _cross_moment(unit, c, q), length_map(f, q, sigma_w2, sigma_b2)
    if denominator == 0.0:
        raise ValueError("the next layer has length 0 (q = 0 and sigma_b2 = 0): its correlation is undefined")
    return min(1.0, max(-1.0, (sigma_w2 * cross + sigma_b2) / denominator))


def correlation_fixed_point(f, sigma_w2: float, sigma_b2: float, *, c0: float = 0.5, q: float | None = None,
                            tol: float = 1e-10, max_iter: int = 5000) -> float:
    r"""The fixed point :math:`c^*` of the correlation map at :math:`q = q^*`, reached from ``c0``.

    1 in the ordered phase (:math:`\chi_1 < 1`); below 1 in the chaotic phase. Near the
    boundary the approach to 1 is slow, so the result there is 1 only to about ``tol``.
    """
    if q is None:
        q = fixed_point(f, sigma_w2, sigma_b2)
    return _iterate(lambda c: min(1.0, correlation_map(f, c, q, sigma_w2, sigma_b2)), float(c0),
                    "the correlation map", tol=tol, max_iter=max_iter, upper=1.0)


def chi1(f, q: float, sigma_w2: float) -> float:
    r""":math:`\chi_1 = \sigma_w^2\, \mathrm{E}[f'(\sqrt q\, z)^2]`, f' by autograd through actlib."""
    sigma_w2 = _check_float("sigma_w2", sigma_w2, strict=True)
    return sigma_w2 * expectation(f, q, squared_slope=True)


def critical_sigma_w2(f, sigma_b2: float, *, q_range: tuple[float, float] = (1e-8, 1e8),
                      points: int = 81, tol: float = 1e-11) -> float:
    r"""The :math:`\sigma_w^2` at which :math:`\chi_1 = 1` at the fixed point: the order-to-chaos
    boundary at bias variance ``sigma_b2``.

    As in Poole et al. (2016) the boundary is parametrised by the fixed point itself: a
    length :math:`q^* > \sigma_b^2` is the fixed point for
    :math:`\sigma_w^2(q^*) = (q^* - \sigma_b^2) / \mathrm{E}[f(\sqrt{q^*} z)^2]`, and the root
    of :math:`\chi_1(q^*, \sigma_w^2(q^*)) = 1` is found by a log-spaced scan of ``q_range``
    (``points >= 2`` values) followed by bisection. At :math:`\sigma_b = 0` with :math:`\chi_1 \ge 1` already at the
    smallest q the boundary is the limit :math:`q^* \to 0`; where :math:`\chi_1 < 1` for every
    q (ReLU with :math:`\sigma_b > 0`: :math:`\sigma_w^2(q) = 2(1 - \sigma_b^2/q)`) it is the limit
    :math:`q^* \to \infty`, read at the top of ``q_range``. Raises ValueError if the fixed
    point on the boundary is unstable (the length map's slope there exceeds 1), as for the
    squared ReLU; in the :math:`q^* \to 0` limit, where that slope is exactly 1, the point is
    unstable when the length grows from a small :math:`q > 0` (SiLU, GELU and Mish at
    :math:`\sigma_b = 0`, whose length maps curve upwards at 0).
    """
    sigma_b2 = _check_float("sigma_b2", sigma_b2)
    low, high = (_check_float("q_range", v, strict=True) for v in q_range)
    if not low < high:
        raise ValueError(f"q_range must be increasing, got {q_range}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an int >= 2 (the scan of q_range), got {points!r}")
    if sigma_b2 >= high:  # q* >= sigma_b2 always: the scan would hold no fixed point
        raise ValueError(f"sigma_b2 = {sigma_b2} must be below the top of q_range ({high}): a fixed "
                         "point has q* > sigma_b2")  # fmt: skip

    def weight(q: float) -> float:
        return (q - sigma_b2) / expectation(f, q)

    def excess(q: float) -> float:
        return chi1(f, q, weight(q)) - 1.0

    def slope(q: float, sigma_w2: float) -> float:  # of the length map at q
        step = 1e-4 * q
        return (length_map(f, q + step, sigma_w2, sigma_b2) - length_map(f, q - step, sigma_w2, sigma_b2)) / (2 * step)

    start = max(low, sigma_b2 * (1 + 1e-6)) if sigma_b2 > 0 else low
    grid = list(np.geomspace(start, high, points))
    values = [excess(q) for q in grid]
    roots = []
    if values[0] >= -1e-9:  # the q* -> 0 limit (sigma_b = 0)
        roots.append(grid[0])
    for i in range(1, len(grid)):
        if (values[i - 1] < 0.0) != (values[i] < 0.0):
            a, b = grid[i - 1], grid[i]
            rising = values[i] >= 0.0
            while b / a - 1.0 > tol:
                middle = math.sqrt(a * b)
                if (excess(middle) >= 0.0) == rising:
                    b = middle
                else:
                    a = middle
            roots.append(math.sqrt(a * b))
    if not roots:  # chi1 < 1 at every finite q*: the q* -> infinity limit
        roots.append(grid[-1])
    def stable_at(q: float) -> bool:
        if sigma_b2 == 0.0 and q == grid[0] and values[0] >= -1e-9:
            # the q* -> 0 limit: the slope of the length map at 0 is 1 there, so stability is
            # decided by the next order; the length must not grow from a small q > 0
            # (tanh: V(q) = q - 2q^2 + ... is stable; SiLU at sigma_w2 = 4: V(q) = q + 3q^2/4 + ... is not)
            probe = 1e4 * q
            return length_map(f, probe, weight(q), sigma_b2) <= probe * (1.0 + 1e-9)
        return slope(q, weight(q)) <= 1.0 + 1e-6

    stable = [q for q in roots if stable_at(q)]
    if not stable:
        raise ValueError(
            f"every fixed point with chi1 = 1 at sigma_b2 = {sigma_b2} is unstable (q* = "
            f"{', '.join(f'{q:.3g}' for q in roots)}): no order-to-chaos transition of the usual kind"
        )
    return weight(stable[0])


def gain(f, q: float = 1.0) -> float:
    r"""The gain :math:`\sqrt{q / \mathrm{E}[f(\sqrt q\, z)^2]}` that keeps the forward length
    ``q`` unchanged at :math:`\sigma_b = 0` (weights :math:`N(0, \text{gain}^2/n_\text{in})`).

    For a positively homogeneous f (ReLU, leaky ReLU) it does not depend on q; otherwise it
    is the gain for pre-activations of unit variance (``q = 1``). Compare with
    :func:`torch.nn.init.calculate_gain`: the same for ReLU (√2) and linear (1); torch's 5/3
    for tanh, 3/4 for SELU and 1 for sigmoid are heuristics, not this quantity.
    """
    q = _check_float("q", q, strict=True)
    second_moment = expectation(f, q)
    if second_moment == 0.0:
        raise ValueError("E[f(sqrt(q) z)^2] = 0: no gain preserves the length")
    return math.sqrt(q / second_moment)
