"""The piecewise-linear activations at their breakpoints: exactly torch's derivative there.

Each breakpoint is tested at the point itself and one ulp either side, in every dtype:
the derivative must equal autograd through torch's own op bit for bit (up to torch's
float32 rounding of 1/6 in float64), and the value to an ulp.
"""

import pytest
import torch
import torch.nn.functional as F

import actlib

BREAKPOINTS = [
    ("relu6", {}, F.relu6, (0.0, 6.0)),
    ("hardtanh", {}, F.hardtanh, (-1.0, 1.0)),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, F.hardtanh, (-2.0, 0.5)),
    ("hardtanh", {"min_val": 0.5, "max_val": 0.5}, F.hardtanh, (0.5,)),
    ("hardsigmoid", {}, F.hardsigmoid, (-3.0, 3.0)),
    ("hardswish", {}, F.hardswish, (-3.0, -1.5, 3.0)),
]


def _around(points, dtype, device):
    """Each point, the next float below it and the next above it, in ``dtype``."""
    centre = torch.tensor(points, dtype=dtype, device=device)
    below = torch.nextafter(centre, torch.full_like(centre, -float("inf")))
    above = torch.nextafter(centre, torch.full_like(centre, float("inf")))
    return torch.cat([below, centre, above, -centre])


def _value_and_derivative(function, x):
    x = x.detach().requires_grad_()
    y = function(x)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), grad


@pytest.mark.parametrize(
    ("name", "kwargs", "reference", "points"), BREAKPOINTS, ids=[f"{c[0]}{c[3]}" for c in BREAKPOINTS]
)
def test_breakpoints_exactly_like_torch(name, kwargs, reference, points, dtype, device):
    x = _around(points, dtype, device)
    y, dy = _value_and_derivative(lambda x_: getattr(actlib, name)(x_, **kwargs), x)
    y_ref, dy_ref = _value_and_derivative(lambda x_: reference(x_, **kwargs), x)
    # Which side each point falls on is exact: the derivative is 0 exactly where torch's is.
    assert torch.equal(dy == 0, dy_ref == 0), (x, dy, dy_ref)
    # The slopes are exact too, except that torch's float64 hardsigmoid multiplies by
    # 1/6 rounded to float32 (0.1666666716) where actlib's slope is 1/6 in float64.
    torch.testing.assert_close(dy, dy_ref, rtol=3e-8 if dtype == torch.float64 else 0, atol=0)
    # Values: torch multiplies by a rounded 1/6 where actlib divides by 6 (an ulp apart).
    torch.testing.assert_close(y, y_ref, rtol=torch.finfo(dtype).eps, atol=0)


def test_the_derivative_values_at_the_breakpoints():
    """The one-sided choices, written out (from autograd of torch's ops, torch 2.13)."""
    def derivative(function, *points, **kwargs):
        return _value_and_derivative(lambda x: function(x, **kwargs), torch.tensor(points))[1]

    assert derivative(actlib.relu6, 0.0, 6.0, float("nan")).tolist() == [0.0, 0.0, 1.0]
    assert derivative(actlib.hardtanh, -1.0, 1.0).tolist() == [0.0, 0.0]
    assert derivative(actlib.hardsigmoid, -3.0, 3.0).tolist() == [0.0, 0.0]
    assert derivative(actlib.hardsigmoid, float("nan")).tolist() == [0.0]
    assert derivative(actlib.hardswish, -3.0, 3.0, float("nan")).tolist() == [0.0, 1.0, 1.0]


def test_hardswish_minimum_and_continuity():
    x = torch.linspace(-4, 4, 8001, dtype=torch.float64)
    y = actlib.hardswish(x)
    assert y.min().item() == -0.375 and x[y.argmin()].item() == -1.5
    assert (y[1:] - y[:-1]).abs().max() < 2e-3  # continuous: steps of at most slope · dx


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (actlib.hardtanh, {"min_val": 1.0, "max_val": -1.0}, r"min_val \(1.0\) cannot be greater"),
        (actlib.hardtanh, {"min_val": float("nan")}, "min_val must be finite"),
        (actlib.hardtanh, {"max_val": "1"}, "max_val must be a real number"),
        (actlib.relu6, {"inplace": 1}, "inplace must be True or False"),
    ],
)
def test_bad_bounds_are_named(function, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        function(torch.ones(3), **kwargs)


def test_half_precision_compares_with_the_bounds_in_float32():
    """float16(1/3) = 0.33325 lies strictly inside (−1/3, 1/3): derivative 1, as torch's."""
    for dtype in (torch.float16, torch.bfloat16):
        z = torch.tensor([-1 / 3, 1 / 3, 0.1], dtype=dtype, requires_grad=True)
        ours = torch.autograd.grad(actlib.hardtanh(z, -1 / 3, 1 / 3).sum(), z)[0]
        theirs = torch.autograd.grad(F.hardtanh(z, -1 / 3, 1 / 3).sum(), z)[0]
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_hardsigmoid_slope_is_one_sixth_in_float64():
    x = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(actlib.hardsigmoid(x).sum(), x)
    assert slope.item() == 1 / 6  # torch's own kernel gives float32's 0.1666666716


def test_infinite_bounds_like_torch_and_modules_check_their_bounds():
    x = torch.tensor([-5.0, 0.5, 5.0])
    for bounds in ((0.0, float("inf")), (-float("inf"), float("inf")), (-float("inf"), 1.0)):
        torch.testing.assert_close(actlib.hardtanh(x, *bounds), F.hardtanh(x, *bounds))
    with pytest.raises(ValueError, match="min_val must be finite"):
        actlib.hardtanh(x, float("nan"), 1.0)
    with pytest.raises(ValueError, match="too large for a float"):
        actlib.hardtanh(x, -(10**400), 1.0)
    with pytest.raises(ValueError, match=r"min_val \(2\) cannot be greater than max_val \(1\)"):
        actlib.Hardtanh(2, 1)
    assert isinstance(actlib.ReLU6(), actlib.Hardtanh) and actlib.ReLU6().max_val == 6.0


def test_vmap_needs_no_fallback():
    import warnings

    x = torch.linspace(-4, 4, 24).reshape(3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "There is a performance drop ..." would be raised
        for name in ("hardsigmoid", "hardswish", "hardtanh", "relu6"):
            function = getattr(actlib, name)
            torch.testing.assert_close(torch.func.vmap(function)(x), function(x))
