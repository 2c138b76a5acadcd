"""actlib.meanfield against closed forms, Monte Carlo with a fixed seed, and scipy quadrature."""

import math

import pytest
import torch

import actlib
from actlib import meanfield as mf


def identity(x):
    return x


# ------------------------------------------------------------------ closed forms: ReLU


@pytest.mark.parametrize("q", [0.3, 1.0, 7.0])
def test_relu_length_map_is_half_q(q):
    assert mf.expectation("relu", q) == pytest.approx(q / 2, rel=1e-12)
    assert mf.length_map("relu", q, 1.5, 0.1) == pytest.approx(1.5 * q / 2 + 0.1, rel=1e-12)


@pytest.mark.parametrize(("sigma_w2", "sigma_b2"), [(1.0, 0.1), (1.5, 0.3), (1.9, 0.05)])
def test_relu_fixed_point_closed_form(sigma_w2, sigma_b2):
    expected = sigma_b2 / (1 - sigma_w2 / 2)
    assert mf.fixed_point("relu", sigma_w2, sigma_b2) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("q", [0.5, 2.0])
def test_relu_chi1_is_half_sigma_w2(q):
    assert mf.chi1("relu", q, 1.7) == pytest.approx(1.7 / 2, rel=1e-12)


@pytest.mark.parametrize("sigma_b2", [0.0, 0.05, 0.5])
def test_relu_critical_sigma_w2_is_two(sigma_b2):
    assert mf.critical_sigma_w2("relu", sigma_b2) == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("c", [-0.9, -0.3, 0.0, 0.3, 0.7, 0.99, 1.0])
def test_relu_correlation_map_arccos_kernel(c):
    # Cho & Saul (2009): E[relu(u1) relu(u2)] = q/(2π) (√(1-c²) + (π - arccos c) c)
    q = 1.3
    cross = q / (2 * math.pi) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c)
    expected = (2.0 * cross + 0.0) / (2.0 * q / 2)
    assert mf.correlation_map("relu", c, q, 2.0, 0.0) == pytest.approx(expected, abs=1e-10)


def test_relu_gain_matches_torch():
    assert mf.gain("relu") == pytest.approx(torch.nn.init.calculate_gain("relu"), rel=1e-12)
    assert mf.gain("relu", q=9.0) == pytest.approx(math.sqrt(2), rel=1e-12)
    slope = 0.01
    assert mf.gain("leaky_relu") == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-10)


# ------------------------------------------------------------------ closed forms: linear f


def test_linear_everything_closed_form():
    w, b, q, c = 0.7, 0.2, 1.4, 0.3
    assert mf.length_map(identity, q, w, b) == pytest.approx(w * q + b, rel=1e-12)
    assert mf.fixed_point(identity, w, b) == pytest.approx(b / (1 - w), rel=1e-9)
    assert mf.correlation_map(identity, c, q, w, b) == pytest.approx((w * c * q + b) / (w * q + b), rel=1e-12)
    assert mf.chi1(identity, q, w) == pytest.approx(w, rel=1e-12)
    assert mf.critical_sigma_w2(identity, 0.0) == pytest.approx(1.0, rel=1e-8)
    assert mf.gain(identity) == pytest.approx(torch.nn.init.calculate_gain("linear"))
    assert mf.correlation_fixed_point(identity, w, b) == pytest.approx(1.0, abs=1e-8)


# ------------------------------------------------------------------ tanh and the phases


def test_tanh_ordered_phase_has_c_star_one():
    assert mf.chi1("tanh", mf.fixed_point("tanh", 0.8, 0.05), 0.8) < 1
    assert mf.correlation_fixed_point("tanh", 0.8, 0.05) == pytest.approx(1.0, abs=1e-6)


def test_tanh_chaotic_phase_has_c_star_below_one():
    q = mf.fixed_point("tanh", 4.0, 0.05)
    assert mf.chi1("tanh", q, 4.0) > 1
    c_star = mf.correlation_fixed_point("tanh", 4.0, 0.05)
    assert 0 < c_star < 0.9
    assert mf.correlation_map("tanh", c_star, q, 4.0, 0.05) == pytest.approx(c_star, abs=1e-9)


def test_tanh_boundary_at_zero_bias_is_one_and_chi1_is_one_on_it():
    assert mf.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    sigma_w2 = mf.critical_sigma_w2("tanh", 0.05)
    assert 1.6 < sigma_w2 < 1.9  # Poole et al. (2016), figure 2
    q = mf.fixed_point("tanh", sigma_w2, 0.05)
    assert mf.chi1("tanh", q, sigma_w2) == pytest.approx(1.0, abs=1e-6)


def test_torch_tanh_gain_is_a_heuristic_not_the_mean_field_value():
    assert torch.nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert 1.55 < mf.gain("tanh") < 1.62


def test_selu_gain_is_one():
    # SELU's constants make E[selu(z)^2] = 1 for z ~ N(0, 1); torch's 3/4 is another choice.
    assert mf.gain("selu") == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------ Monte Carlo and scipy


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "sigmoid", "hardswish", "relu6", "elu"])
def test_expectations_against_monte_carlo(name):
    f = getattr(actlib, name)
    q = 2.5
    z = actlib.seeded_randn(400_000, seed=3, dtype=torch.float64) * math.sqrt(q)
    values = f(z) ** 2
    # 6 standard errors of the sample mean
    tolerance = 6 * float(values.std()) / math.sqrt(values.numel())
    assert abs(mf.expectation(name, q) - float(values.mean())) < tolerance


def test_gated_unit_against_monte_carlo():
    q, n = 1.7, 200_000
    x = actlib.seeded_randn(n, 2, seed=5, dtype=torch.float64) * math.sqrt(q)
    h = actlib.swiglu(x)[:, 0]
    tolerance = 6 * float((h**2).std()) / math.sqrt(n)
    assert abs(mf.expectation("swiglu", q) - float((h**2).mean())) < tolerance
    # independent halves: E[(silu(a) b)^2] = q E[silu(a)^2]
    assert mf.expectation("swiglu", q) == pytest.approx(q * mf.expectation("silu", q), rel=1e-6)


def test_correlation_map_against_monte_carlo():
    q, c, n = 1.2, 0.4, 400_000
    z = actlib.seeded_randn(2, n, seed=7, dtype=torch.float64)
    u1 = math.sqrt(q) * z[0]
    u2 = math.sqrt(q) * (c * z[0] + math.sqrt(1 - c * c) * z[1])
    product = torch.tanh(u1) * torch.tanh(u2)
    tolerance = 6 * float(product.std()) / math.sqrt(n)
    expected = (2.0 * float(product.mean()) + 0.1) / mf.length_map("tanh", q, 2.0, 0.1)
    assert abs(mf.correlation_map("tanh", c, q, 2.0, 0.1) - expected) < 2.0 * tolerance / 0.5


def test_against_scipy_quadrature():
    integrate = pytest.importorskip("scipy.integrate")

    def gaussian(g, q):
        value, _ = integrate.quad(lambda z: g(math.sqrt(q) * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                                  -12, 12, limit=200, epsabs=1e-13, epsrel=1e-13)
        return value

    q = 0.8
    assert mf.expectation("tanh", q) == pytest.approx(gaussian(lambda u: math.tanh(u) ** 2, q), abs=1e-12)
    assert mf.chi1("tanh", q, 1.3) == pytest.approx(
        1.3 * gaussian(lambda u: (1 - math.tanh(u) ** 2) ** 2, q), abs=1e-12)
    erf = math.erf
    gelu = lambda u: 0.5 * u * (1 + erf(u / math.sqrt(2)))  # noqa: E731
    assert mf.expectation("gelu", q) == pytest.approx(gaussian(lambda u: gelu(u) ** 2, q), abs=1e-12)


def test_module_and_callable_give_the_catalog_value():
    assert mf.expectation(actlib.Tanh(), 1.1) == pytest.approx(mf.expectation("tanh", 1.1), rel=1e-14)
    assert mf.expectation(actlib.tanh, 1.1) == pytest.approx(mf.expectation("tanh", 1.1), rel=1e-14)


def test_gains_of_the_smooth_rectifiers():
    # E[f(z)^2] < 1/2 for z ~ N(0, 1): they need a larger gain than ReLU's sqrt(2).
    for name in ("silu", "gelu", "mish"):
        assert math.sqrt(2) < mf.gain(name) < 1.8


# ------------------------------------------------------------------ bad input


def test_divergence_raises():
    with pytest.raises(mf.DivergenceError, match="diverges"):
        mf.fixed_point("relu", 3.0, 0.1)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: mf.length_map("relu", -1.0, 1.0, 0.0), ValueError, "q must be"),
        (lambda: mf.length_map("relu", float("nan"), 1.0, 0.0), ValueError, "q must be"),
        (lambda: mf.length_map("relu", 1.0, 0.0, 0.0), ValueError, "sigma_w2 must be"),
        (lambda: mf.length_map("relu", 1.0, 1.0, -0.1), ValueError, "sigma_b2 must be"),
        (lambda: mf.correlation_map("relu", 1.5, 1.0, 1.0, 0.0), ValueError, "correlation in"),
        (lambda: mf.correlation_map("relu", 0.5, 0.0, 1.0, 0.0), ValueError, "length 0"),
        (lambda: mf.length_map("nope", 1.0, 1.0, 0.0), KeyError, "unknown activation"),
        (lambda: mf.length_map("softmax", 1.0, 1.0, 0.0), ValueError, "not a hidden-layer"),
        (lambda: mf.length_map(3, 1.0, 1.0, 0.0), TypeError, "catalog name"),
        (lambda: mf.length_map("relu", "a", 1.0, 0.0), TypeError, "real number"),
        (lambda: mf.gain("relu", 0.0), ValueError, "q must be"),
        (lambda: mf.critical_sigma_w2("squared_relu", 0.5), ValueError, "unstable"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ stability of the q* -> 0 and q* -> oo limits


@pytest.mark.parametrize(("name", "curvature"), [("silu", 3 / 4), ("gelu", 6 / math.pi)])
def test_length_map_curves_up_at_zero_for_silu_and_gelu(name, curvature):
    # Taylor: silu(x) = x/2 + x^2/4 + O(x^4), gelu(x) = x/2 + x^2/sqrt(2 pi) + O(x^4), so at
    # sigma_w2 = 1/f'(0)^2 = 4: V(q) = q + curvature q^2 + O(q^3) with E[z^4] = 3.
    q = 1e-3
    assert (mf.length_map(name, q, 4.0, 0.0) - q) / q**2 == pytest.approx(curvature, rel=2e-2)


@pytest.mark.parametrize("name", ["silu", "gelu", "mish"])
def test_critical_point_at_zero_bias_is_unstable_for_smooth_rectifiers(name):
    # chi1 = 1 only in the q* -> 0 limit, where the length map curves upwards: no stable point
    with pytest.raises(ValueError, match="unstable"):
        mf.critical_sigma_w2(name, 0.0)


def test_tanh_and_elu_limit_at_zero_stays_critical():
    # tanh: V(q) = q - 2q^2 + ... at sigma_w2 = 1 (bends down): q* -> 0 is stable, f'(0) = 1
    assert mf.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    assert mf.critical_sigma_w2("elu", 0.0) == pytest.approx(1.0, abs=1e-3)


def test_softplus_boundary_is_the_relu_limit():
    # softplus(x) - relu(x) -> 0, so E[f(sqrt(q) z)^2] / q -> 1/2 as q -> infinity: sigma_w2 -> 2
    assert mf.critical_sigma_w2("softplus", 0.0) == pytest.approx(2.0, rel=1e-3)


# ------------------------------------------------------------------ review fixes


@pytest.mark.parametrize("sigma_b2", [0.001, 0.1, 1.0])
def test_relu_at_sigma_w2_two_has_no_fixed_point(sigma_b2):
    # sigma_w2 = 2: V(q) = q + sigma_b2, so q_l = q_0 + l sigma_b2 grows without bound
    with pytest.raises(mf.DivergenceError, match="slope 1"):
        mf.fixed_point("relu", 2.0, sigma_b2)


def test_relu_near_sigma_w2_two_is_accurate_or_refused():
    # closed form q* = sigma_b2 / (1 - sigma_w2/2): the stopping test bounds the error, not the step
    for sigma_w2 in (1.999, 1.999999):
        expected = 0.1 / (1 - sigma_w2 / 2)
        assert mf.fixed_point("relu", sigma_w2, 0.1) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(mf.DivergenceError, match="slope 1"):  # q* = 2e8: slope 1 - 5e-10
        mf.fixed_point("relu", 1.999999999, 0.1)


def test_the_callers_module_is_not_changed_and_is_evaluated_in_eval_mode():
    prelu = torch.nn.PReLU()
    mf.expectation(prelu)
    assert prelu.weight.dtype == torch.float32 and prelu.training
    rrelu = torch.nn.RReLU()  # eval mode: the slope is the mean (1/8 + 1/3)/2 = 11/48 below 0
    a = 11 / 48
    for _ in range(2):
        assert mf.expectation(rrelu, 1.0) == pytest.approx(0.5 * (1 + a * a), rel=1e-12)
    assert rrelu.training


def test_torch_glu_module_is_a_gated_unit():
    integrate = pytest.importorskip("scipy.integrate")
    q = 1.3  # E[(a sigmoid(b))^2] = q E[sigmoid(sqrt(q) z)^2] for independent halves a, b
    sigmoid2 = integrate.quad(lambda z: (1 / (1 + math.exp(-math.sqrt(q) * z))) ** 2
                              * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -12, 12, epsabs=1e-14)[0]
    assert mf.expectation(torch.nn.GLU(), q) == pytest.approx(q * sigmoid2, rel=1e-10)


@pytest.mark.parametrize(
    ("f", "error", "match"),
    [
        (torch.nn.Softmax(dim=-1), ValueError, "not element-wise"),
        (actlib.glu, TypeError, "one output per unit"),
        (math.tanh, TypeError, "must take a float64 torch tensor"),
        (pytest.importorskip("numpy").tanh, TypeError, "must take a float64 torch tensor"),
        (lambda u: torch.tanh(u.float()), TypeError, "returned torch.float32"),
    ],
)
def test_functions_that_are_not_units_are_refused(f, error, match):
    with pytest.raises(error, match=match):
        mf.expectation(f)


def _gated_reference(gate, c, q, sigma_w2, sigma_b2):
    """C(c) of a(x) gate(b(x)) with independent halves: E[f(u1) f(u2)] = c q E[g(b1) g(b2)],
    by a 200-node Gauss–Hermite product rule in numpy."""
    np = pytest.importorskip("numpy")
    x, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / np.sqrt(2 * np.pi)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    b1, b2 = np.sqrt(q) * z1, np.sqrt(q) * (c * z1 + np.sqrt(1 - c * c) * z2)
    cross = c * q * np.sum(np.outer(w, w) * gate(b1) * gate(b2))
    second = q * np.sum(w * gate(np.sqrt(q) * x) ** 2)
    return (sigma_w2 * cross + sigma_b2) / (sigma_w2 * second + sigma_b2)


@pytest.mark.parametrize(("q", "tolerance"), [(1.0, 1e-6), (3.0, 1e-4), (30.0, 5e-3)])
def test_gated_correlation_map_is_one_at_one_and_near_the_factorised_value(q, tolerance):
    special = pytest.importorskip("scipy.special")
    gates = {"glu": special.expit, "geglu": lambda u: 0.5 * u * (1 + special.erf(u / math.sqrt(2)))}
    for name, gate in gates.items():
        assert mf.correlation_map(name, 1.0, q, 1.5, 0.0) == 1.0
        for c in (-0.3, 0.5, 0.9):
            expected = _gated_reference(gate, c, q, 1.5, 0.1)
            assert mf.correlation_map(name, c, q, 1.5, 0.1) == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: mf.critical_sigma_w2("tanh", 0.1, points=1), ValueError, "points must be an int >= 2"),
        (lambda: mf.critical_sigma_w2("tanh", 0.1, points=0), ValueError, "points must be an int >= 2"),
        (lambda: mf.critical_sigma_w2("tanh", 0.1, points=2.5), ValueError, "points must be an int >= 2"),
        (lambda: mf.critical_sigma_w2("tanh", 1e9), ValueError, "below the top of q_range"),
        (lambda: mf.length_map("tanh", "1", 1.0, 0.0), TypeError, "q must be a real number"),
        (lambda: mf.length_map("tanh", True, 1.0, 0.0), TypeError, "q must be a real number"),
        (lambda: mf.fixed_point("tanh", 1.5, 0.1, max_iter=2.5), ValueError, "max_iter must be an int"),
        (lambda: mf.fixed_point("tanh", 1.5, 0.1, tol=-1.0), ValueError, "tol must be finite and > 0"),
    ],
)
def test_bad_scan_and_iteration_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
