"""Values and gradients against torch.nn.functional, in all four float dtypes.

Inputs span the whole range of each dtype (subnormals, ±0, ordinary values, |x| up to the
largest finite value, ±inf, NaN). An element is right when it
matches torch at the dtype's default tolerance, or matches the float64 truth rounded to
the dtype (``_assert_like_torch``): torch's own kernels differ by platform, so torch is a
reference, not the truth.

The truth is torch evaluated in float64 on the same input, and, where that is NaN (the
input is ±inf), torch in float64 at ±finfo(float64).max — the limit. Where torch returns
NaN for a non-NaN input, actlib deliberately returns that limit (policy in the
``actlib.elementwise`` docstring: e.g. ``F.silu(-inf)`` and ``F.softsign(inf)`` are NaN in
torch).
"""

import math

import pytest
import torch
import torch.nn.functional as F

from actlib.catalog import CATALOG, maxout_reference


def _value_and_derivative(function, x):
    """f(x) and, element by element, f'(x) (grad_output of ones), for an element-wise f."""
    x = x.detach().requires_grad_()
    y = function(x)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), grad


# torch.testing.assert_close's default (rtol, atol) per dtype, applied element by element.
TOLERANCES = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
}
HALF = (torch.float16, torch.bfloat16)


def _float64_truth(truth_at, x):
    """torch's result in float64 at ``x``; where that is NaN (x = ±inf), the limit.

    The limit is torch at ±finfo(float64).max, or, where torch's formula is NaN even there
    (the tanh-GELU derivative forms x³ = inf), at ±1e30, far beyond the point where every
    derivative here has reached its limit in float64.
    """
    x64 = x.double()
    truth = truth_at(x64)
    for bound in (torch.finfo(torch.float64).max, 1e30):
        missing = truth.isnan() & ~x64.isnan()
        if missing.any():
            truth = torch.where(missing, truth_at(x64.clamp(-bound, bound)), truth)
    return truth


def _assert_like_torch(actual, expected, truth, x, what, atol=None):
    """Every element close to torch's, or to the float64 truth rounded to the dtype.

    torch is a reference, not the truth: its kernels differ by platform (the AVX2, AVX-512
    and scalar CPU paths, CUDA, half precision). ``F.gelu`` at float32's largest value is
    ``inf`` in the vector path (x·(1 + erf) overflows before the ½) and finite in the
    scalar one, depending on the CPU and on where the element falls in the tensor. So an
    element of actlib's result is right when

    * it is NaN where torch, and the float64 truth too, are NaN (NaN in, NaN out; a row
      of softmax that is NaN in float64 too); or
    * it matches torch at the dtype's default tolerance (``atol`` overrides the absolute
      part), and is not ±inf where the truth is finite in the dtype; or
    * it matches ``truth`` (torch in float64, the limit where that is NaN) rounded to the
      dtype: ±inf is accepted only where the truth lies beyond the dtype's range, where
      rounding gives ±inf. This also covers the documented deviations (``F.silu(-inf)``
      is NaN in torch, the limit 0 in actlib) and half precision, where torch's composite
      functionals round after every op while actlib rounds once.
    """
    rtol, default_atol = TOLERANCES[x.dtype]
    atol = default_atol if atol is None else atol
    rounded_truth = truth.to(actual.dtype)
    both_nan = actual.isnan() & expected.isnan() & rounded_truth.isnan()
    spurious_inf = actual.isinf() & rounded_truth.isfinite()
    like_torch = torch.isclose(actual, expected, rtol, atol) & ~spurious_inf
    like_truth = torch.isclose(actual, rounded_truth, rtol, atol)
    ok = both_nan | like_torch | like_truth
    if not ok.all():
        rows = "\n".join(
            f"  x={a!r:>12} actlib={b!r:>12} torch={c!r:>12} float64 truth={d!r:>12}"
            for a, b, c, d in zip(
                x[~ok].tolist(),
                actual[~ok].tolist(),
                expected[~ok].tolist(),
                truth[~ok].tolist(),
                strict=True,
            )
        )
        raise AssertionError(f"{what} ({x.dtype}, rtol={rtol}, atol={atol}) differs at\n{rows}")


# Where torch's float64 op overflows on its way to a finite result, the truth is the same
# function written another way: F.hardswish forms x · relu6(x + 3) before dividing by 6, so
# it is inf at the largest float64 where x · hardsigmoid(x) is that largest float.
TRUTH_FORMS = {"hardswish": lambda x: x * F.hardsigmoid(x)}


@pytest.mark.catalog("elementwise", "parametric")
def test_elementwise_value_and_gradient(
    record, example, dtype, device, prepare, call_reference, special_values
):
    x = special_values(dtype, device)
    kwargs = prepare(record, example, x)

    def reference(x_):
        return call_reference(record, x_, prepare(record, example, x_))

    y, dy = _value_and_derivative(lambda x_: record.functional(x_, **kwargs), x)
    y_ref, dy_ref = _value_and_derivative(reference, x)
    assert y.dtype == y_ref.dtype == dtype and dy.dtype == dtype
    truth = _float64_truth(TRUTH_FORMS.get(record.name, reference), x)
    _assert_like_torch(y, y_ref, truth, x, f"{record.name} value")
    truth = _float64_truth(lambda x64: _value_and_derivative(reference, x64)[1], x)
    _assert_like_torch(dy, dy_ref, truth, x, f"{record.name} derivative")


def _gelu_without_cancellation(x, approximate):
    """GELU in closed forms that keep their relative precision in the left tail:
    x Φ(x) = ½ x erfc(−x/√2), and the tanh form ½ x (1 + tanh u) = x σ(2u)."""
    if approximate == "tanh":
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return x * torch.sigmoid(2 * u)
    return 0.5 * x * torch.special.erfc(-x / math.sqrt(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.catalog("elementwise", "parametric")
def test_relative_accuracy_in_the_tails(record, example, dtype, prepare, call_reference):
    """Tiny values (softplus(−50) ≈ 2e-22, sigmoid(−80)) to a few ulps, not just within atol.

    Values only: derivatives in a saturating tail (1 − tanh² x) are differences of nearly
    equal numbers in torch as in actlib, so they carry no relative accuracy to compare.

    The default atol (1e-5) would accept 0 for e^{-50}: this catches log(1 + e^x)-style
    formulas that round 1 + e^x to 1 far out in a tail. Right means a few ulps from torch
    or from torch in float64 rounded to the dtype (torch's kernels differ by platform).

    GELU is held to a closed form without cancellation instead (torch's forms 1 + erf and
    1 + tanh cancel to 0 there), within a few ulps times its condition number
    κ = |x f′(x) / f(x)|: its tail e^{−x²/2} turns the rounding of x/√2 (or of the cubic
    u) into a relative error of κ ulps, about x² of them, in any implementation.
    """
    x = torch.linspace(-80, 80, 321, dtype=dtype)
    kwargs = prepare(record, example, x)
    y = record.functional(x, **kwargs)
    y_ref = call_reference(record, x, kwargs)
    x64 = x.double()
    rtol, atol = 16 * torch.finfo(dtype).eps, torch.finfo(dtype).tiny
    if record.name == "gelu":
        approximate = example.get("approximate", "none")
        x64.requires_grad_()
        closed_form = _gelu_without_cancellation(x64, approximate)
        (slope,) = torch.autograd.grad(closed_form.sum(), x64)
        kappa = (x64 * slope / closed_form).abs().detach().nan_to_num(0.0)
        y64 = closed_form.detach().to(dtype)
        within = (y - y64).abs() <= atol + rtol * (1 + kappa.to(dtype)) * y64.abs()
        ok = torch.isclose(y, y_ref, rtol, atol) | within
    else:
        y64 = call_reference(record, x64, prepare(record, example, x64)).to(dtype)
        ok = torch.isclose(y, y_ref, rtol, atol) | torch.isclose(y, y64, rtol, atol)
    assert ok.all(), (
        f"{record.name} {example}: {x[~ok].tolist()} -> actlib {y[~ok].tolist()}, "
        f"torch {y_ref[~ok].tolist()}, float64 truth {y64[~ok].tolist()}"
    )


@pytest.mark.catalog("elementwise", "parametric")
def test_derivative_at_kink(record, example, dtype, device, prepare, call_reference):
    """At exactly +0 and -0 the derivative equals torch's (one-sided choices included)."""
    x = torch.tensor([0.0, -0.0], dtype=dtype, device=device)
    kwargs = prepare(record, example, x)
    y, dy = _value_and_derivative(lambda x_: record.functional(x_, **kwargs), x)
    y_ref, dy_ref = _value_and_derivative(lambda x_: call_reference(record, x_, kwargs), x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(dy, dy_ref)


def test_prelu_per_channel(dtype, device, special_values):
    """One slope per channel (dim 1): values, input gradient and weight gradient."""
    record = CATALOG["prelu"]
    values = special_values(dtype)
    values = values[~values.isnan() & values.isfinite()]  # the weight gradient sums x·grad
    channels = 3
    # Σ x·grad over a channel must stay finite for the weight gradients to be comparable.
    values = values.clamp(-100, 100)
    per_channel = values.numel() // (2 * channels)
    x = values[: 2 * channels * per_channel].reshape(2, channels, per_channel).to(device)
    weight = torch.tensor([0.25, -0.5, 2.0], dtype=dtype, device=device)

    def grads(function):
        x_ = x.detach().requires_grad_()
        w_ = weight.detach().requires_grad_()
        y = function(x_, w_)
        g = torch.linspace(-1, 1, y.numel(), dtype=dtype, device=device).reshape(y.shape)
        return (y, *torch.autograd.grad(y, (x_, w_), g))

    for got, want in zip(grads(record.functional), grads(record.reference), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        if got.dtype in (torch.float16, torch.bfloat16) and got.shape == weight.shape:
            # The weight gradient is a sum of ~20 products; both sides accumulate in
            # float32 but in different orders, so compare at a sum's tolerance.
            torch.testing.assert_close(got, want, rtol=2e-2, atol=1e-2)
        else:
            torch.testing.assert_close(got, want)


def _rows(dtype, device):
    """Rows for the functions of a dimension: ordinary, huge, ±inf, all -inf, NaN, ties."""
    generator = torch.Generator().manual_seed(0)
    ordinary = torch.randn(4, 7, generator=generator, dtype=torch.float64)
    rows = [
        *ordinary,
        ordinary[0] * 1e4,
        ordinary[1] * 1e30,
        torch.tensor([1e4, 1e4 - 1, -1e4, 0, 3, 2, 1], dtype=torch.float64),
        torch.tensor([0.0, -0.0, 0, 0, 0, 0, 0], dtype=torch.float64),
        torch.tensor([1.0, 2, float("inf"), 0, -1, 2, 3], dtype=torch.float64),
        torch.tensor([1.0, float("-inf"), 0, -1, 2, 3, 5], dtype=torch.float64),
        torch.full((7,), float("-inf"), dtype=torch.float64),
        torch.tensor([1.0, float("inf"), float("inf"), 0, -1, 2, 3], dtype=torch.float64),
        torch.tensor([1.0, 2, float("nan"), 0, -1, 2, 3], dtype=torch.float64),
    ]
    return torch.stack(rows).to(dtype).to(device)


@pytest.mark.catalog("dim")
def test_dim_value_and_gradient(record, example, dtype, device):
    """softmax/log_softmax: same values and vector–Jacobian products, NaN where torch's are."""
    x = _rows(dtype, device)
    if example.get("dim") == 0:
        x = x.T.contiguous()
    generator = torch.Generator().manual_seed(1)
    g = torch.randn(x.shape, generator=generator).to(dtype).to(device)

    def evaluate(function, x, g):
        x_ = x.detach().requires_grad_()
        y = function(x_, **example)
        (grad,) = torch.autograd.grad(y, x_, g)
        return y.detach(), grad

    y, dy = evaluate(record.functional, x, g)
    y_ref, dy_ref = evaluate(record.reference, x, g)
    y64, dy64 = evaluate(record.reference, x.double(), g.double())
    assert y.dtype == dtype and dy.dtype == dtype
    _assert_like_torch(y, y_ref, y64, x, f"{record.name} value")
    # The VJPs y ⊙ (g − ⟨g, y⟩) and g − e^y Σg subtract terms of the size of g (≈ 1):
    # in half precision their absolute error is some ulps of 1, not of the (smaller)
    # difference, for torch as for actlib. So the absolute tolerance is the dtype's rtol.
    vjp_atol = TOLERANCES[dtype][0] if dtype in HALF else None
    _assert_like_torch(dy, dy_ref, dy64, x, f"{record.name} vector-Jacobian product", vjp_atol)


@pytest.mark.catalog("dim")
def test_dim_dtype_argument_casts_first(record, example, dtype):
    x = _rows(torch.float32, "cpu")[:6]
    got = record.functional(x, dtype=dtype, **example)
    want = record.reference(x, dtype=dtype, **example)
    assert got.dtype == want.dtype == dtype
    torch.testing.assert_close(got, want, equal_nan=True)  # 1e30 overflows float16: NaN rows


@pytest.mark.catalog("index")
def test_index_matches_torch(record, example, dtype, device):
    """argmax: same indices as torch.argmax, ties → first index, NaN counts as the maximum."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randint(-3, 4, (6, 9), generator=generator).to(dtype)  # many ties
    x[1, 4] = float("nan")
    x[2, :] = float("-inf")
    x[3, 2] = float("inf")
    x[4, 5:7] = float("nan")
    x = x.to(device)
    got = record.functional(x, **example)
    want = record.reference(x, **example)
    assert got.dtype == want.dtype == torch.int64
    assert torch.equal(got, want)
    assert (
        not got.requires_grad and not record.functional(x.requires_grad_(), **example).requires_grad
    )


@pytest.mark.parametrize("shape", [(5,), (), (1, 1, 1)])
def test_index_small_shapes(shape):
    argmax = CATALOG["argmax"]
    x = torch.tensor([2.0, 7.0, 7.0, 1.0, 7.0]).reshape(-1)[: torch.Size(shape).numel()]
    x = x.reshape(shape)
    for example in argmax.examples:
        if example.get("dim", 0) not in range(-max(len(shape), 1), max(len(shape), 1)):
            continue
        assert torch.equal(argmax.functional(x, **example), argmax.reference(x, **example))


@pytest.mark.catalog("maxout")
def test_maxout_matches_reference(record, example, dtype, device):
    """Values and gradients vs reshape + amax; distinct values, so no ties split the gradient."""
    generator = torch.Generator().manual_seed(3)
    values = torch.randperm(120, generator=generator).to(torch.float64) - 60
    x = values.reshape(6, 20).to(dtype).to(device)  # small integers: exact in every dtype
    x[0, 0] = float("inf")
    x[1, 3] = float("-inf")
    g = torch.linspace(-1, 1, 6 * 20).reshape(6, 20)

    def evaluate(function):
        x_ = x.detach().requires_grad_()
        y = function(x_, **example)
        (grad,) = torch.autograd.grad(y, x_, g[: y.shape[0], : y.shape[1]].to(dtype).to(device))
        return y.detach(), grad

    y, dy = evaluate(record.functional)
    y_ref, dy_ref = evaluate(maxout_reference)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(dy, dy_ref, rtol=0, atol=0)
    nan_x = x.clone()
    nan_x[2, 2] = float("nan")
    torch.testing.assert_close(
        record.functional(nan_x, **example),
        maxout_reference(nan_x, **example),
        equal_nan=True,
    )
