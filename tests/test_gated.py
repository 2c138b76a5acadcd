"""Gated linear units and the feed-forward blocks built from them.

Values and gradients over every pair of special values (a, b) in the four dtypes, against
the composition of torch's ops (``F.glu`` for GLU), with the same acceptance rule as the
element-wise reference tests: torch's value or the float64 truth rounded to the dtype.
The truth is the composition in float64, with the activated half at −inf replaced by
finfo(float64).min: the gate takes its limit there (silu(−inf) = 0, where torch's F.silu
gives NaN), as actlib's element-wise activations do. A product of the two halves such as
0 · inf stays NaN: no limit is taken across two inputs.
"""

import pytest
import torch
import torch.nn.functional as F
from test_reference import _assert_like_torch

import actlib
from actlib.catalog import CATALOG


def _pairs(record, special_values, dtype, device):
    """Rows [a, b]: every special value in the activated half, paired with every linear one.

    The linear half v takes the special values up to |v| ≤ 100, and ±inf and NaN: a
    huge finite v would only multiply the gate's own rounding, which the element-wise
    tests already check (torch's float64 F.gelu is −0 at −10, and σ(1 − σ) is 0 at 50,
    where the truth is 1e-23; times v = 1e30 that is no longer within any tolerance).
    """
    values = special_values(dtype)
    linear = values[(values.abs() <= 100) | ~values.isfinite()]
    u, v = torch.meshgrid(values, linear, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    halves = (v, u) if record.name == "glu" else (u, v)  # F.glu gates with the second half
    return torch.stack(halves, dim=-1).to(device)


def _truth_input(record, x, both_sides=False):
    """``x`` in float64 with −inf (and +inf if ``both_sides``) in the activated half made finite.

    The value takes the gate's limit at −inf only (g(+inf) = +inf is exact), at the most
    negative float64; the derivative g′ takes it on both sides (silu′(+inf) = 1, where
    torch forms inf · 0), at ±1e30, where every g′ has long reached its limit and torch's
    formulas do not yet overflow (x² in the GELU derivative does at ±finfo.max).
    """
    x64 = x.double().clone()
    activated = 1 if record.name == "glu" else 0  # F.glu gates with the second half
    if both_sides:
        x64[:, activated] = x64[:, activated].clamp(-1e30, 1e30)
    else:
        x64[:, activated] = x64[:, activated].clamp_min(torch.finfo(torch.float64).min)
    return x64


def _infinite_times_a_small_gate(actual, expected, x):
    """Where an input is ±inf and torch gives NaN: actlib's NaN or ±inf is accepted.

    There torch multiplies inf by a gate (or gate derivative) that underflowed to 0: in
    float32 e^{100} overflows, so σ(−100) is 0 although the truth is a subnormal; in
    float64 torch's gelu(−10) is −0 (1 + erf cancels) and its σ′(50) = σ(1 − σ) is 0.
    Where actlib's gate is that small but not 0 the product is ±inf, the right limit;
    where it underflowed too, NaN, like torch.
    """
    return x.isinf().any(-1) & expected.isnan() & (actual.isnan() | actual.isinf())


def _value_and_gradient(function, x):
    x = x.detach().requires_grad_()
    y = function(x)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), grad


@pytest.mark.catalog("gated")
def test_value_and_gradient_over_special_pairs(record, example, dtype, device, special_values):
    kwargs = {**example, "dim": -1}
    x = _pairs(record, special_values, dtype, device)

    def reference(x_):
        return record.reference(x_, **kwargs)

    y, dy = _value_and_gradient(lambda x_: record.functional(x_, **kwargs), x)
    y_ref, dy_ref = _value_and_gradient(reference, x)
    assert y.shape == (x.shape[0], 1) and y.dtype == dy.dtype == dtype
    truth = reference(_truth_input(record, x))
    accepted = _infinite_times_a_small_gate(y[:, 0], y_ref[:, 0], x)
    _assert_like_torch(y[~accepted, 0], y_ref[~accepted, 0], truth[~accepted, 0],
                       x[~accepted, 0], f"{record.name} value")  # fmt: skip
    activated = 1 if record.name == "glu" else 0
    for half in (0, 1):  # ∂y/∂a and ∂y/∂b
        # ∂y/∂u = g′(u) v takes g′'s limit at u = ±inf; ∂y/∂v = g(u) only g's at −inf.
        x64 = _truth_input(record, x, both_sides=half == activated)
        truth = _value_and_gradient(reference, x64)[1]
        accepted = _infinite_times_a_small_gate(dy[:, half], dy_ref[:, half], x)
        _assert_like_torch(dy[~accepted, half], dy_ref[~accepted, half], truth[~accepted, half],
                           x[~accepted, half], f"{record.name} gradient in half {half}")  # fmt: skip


@pytest.mark.catalog("gated")
def test_halves_along_any_dim(record, example):
    x = torch.linspace(-3, 3, 4 * 6 * 8, dtype=torch.float64).reshape(4, 6, 8)
    for dim in (0, 1, 2, -1, -2):
        kwargs = {**example, "dim": dim}
        torch.testing.assert_close(record.functional(x, **kwargs), record.reference(x, **kwargs))


def test_the_gradient_through_a_gate_is_the_product_rule():
    """∂(silu(a) b)/∂b = silu(a), a value, not a derivative; ∂/∂a = silu′(a) b."""
    a = torch.tensor([-2.0, 0.5, 4.0], dtype=torch.float64)
    b = torch.tensor([1.5, -1.0, 2.0], dtype=torch.float64)
    x = torch.cat([a, b]).requires_grad_()
    (grad,) = torch.autograd.grad(actlib.swiglu(x).sum(), x)
    sigma = 1 / (1 + torch.exp(-a))
    torch.testing.assert_close(grad[3:], a * sigma)  # silu(a), closed form
    torch.testing.assert_close(grad[:3], sigma * (1 + a * (1 - sigma)) * b)


def test_glu_halves_are_torchs_and_shazeers_are_swapped():
    x = torch.tensor([[0.3, -1.2, 2.0, 0.7]], dtype=torch.float64)
    a, b = x.chunk(2, -1)
    torch.testing.assert_close(actlib.glu(x), a * torch.sigmoid(b))
    torch.testing.assert_close(actlib.gated(x, "sigmoid"), torch.sigmoid(a) * b)
    torch.testing.assert_close(actlib.gated(x, "silu"), actlib.swiglu(x))


@pytest.mark.parametrize("name", ["glu", "reglu", "geglu", "swiglu"])
def test_odd_sizes_and_0_d_inputs_are_refused(name):
    with pytest.raises(ValueError, match=rf"actlib.{name}: size 5 of dim 1 is odd"):
        getattr(actlib, name)(torch.ones(2, 5))
    with pytest.raises(ValueError, match="needs at least one dimension"):
        getattr(actlib, name)(torch.tensor(1.0))


def test_bad_gate_names_are_named():
    with pytest.raises(ValueError, match="activation must be one of"):
        actlib.gated(torch.ones(4), "tanh")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        actlib.geglu(torch.ones(4), approximate="erf")


# ------------------------------------------------------------------- feed-forward blocks


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("d_model", [6, 64, 100, 512])
def test_gated_ffn_matches_the_parameter_count_of_a_4x_ffn(d_model):
    gated = actlib.GatedFeedForward(d_model)
    plain = actlib.FeedForward(d_model)
    hidden = (8 * d_model) // 3
    assert gated.down.in_features == hidden
    assert _count(plain) == 8 * d_model**2
    assert 0 <= _count(plain) - _count(gated) < 3 * d_model
    if d_model % 3 == 0:
        assert _count(gated) == _count(plain)


def test_gated_hidden_size_rounds_like_llama():
    assert actlib.gated_hidden_size(4096, multiple_of=256) == 11008  # LLaMA-7B's
    assert actlib.gated_hidden_size(5120, multiple_of=256) == 13824  # LLaMA-13B's
    assert actlib.gated_hidden_size(10) == 26
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        actlib.gated_hidden_size(0)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "gelu", "silu"])
def test_gated_ffn_is_its_formula(activation):
    torch.manual_seed(0)
    block = actlib.GatedFeedForward(8, hidden=5, activation=activation, bias=True).double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    w_gate, w_up = block.gate_and_up.weight.chunk(2, 0)
    b_gate, b_up = block.gate_and_up.bias.chunk(2, 0)
    act = {"sigmoid": torch.sigmoid, "relu": F.relu, "gelu": F.gelu, "silu": F.silu}[activation]
    expected = block.down(act(x @ w_gate.T + b_gate) * (x @ w_up.T + b_up))
    torch.testing.assert_close(block(x), expected)
    assert torch.autograd.gradcheck(block, (x[:1, :2].clone().requires_grad_(),))
    assert repr(block).startswith(f"GatedFeedForward(\n  activation='{activation}'")


def test_ffn_is_its_formula():
    torch.manual_seed(0)
    block = actlib.FeedForward(8, activation="gelu").double()
    x = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(block(x), block.down(F.gelu(block.up(x))))
    assert block.up.out_features == 32


def test_feed_forward_bad_arguments():
    with pytest.raises(ValueError, match="activation must be one of"):
        actlib.GatedFeedForward(8, activation="tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        actlib.FeedForward(8, activation="swish")
    with pytest.raises(ValueError, match="hidden must be a positive int, got 0"):
        actlib.GatedFeedForward(8, hidden=0)
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        actlib.FeedForward(-1)


def test_gated_units_are_hidden_activations_of_build_mlp():
    for name in ("glu", "reglu", "geglu", "swiglu"):
        assert CATALOG[name].kind == "gated"
        model = actlib.analysis.build_mlp(4, 6, 2, 3, name)
        assert model[0].out_features == 12 and model(torch.ones(2, 4)).shape == (2, 3)
