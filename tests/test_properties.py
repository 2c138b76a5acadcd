"""Property tests (hypothesis): identities every correct implementation satisfies.

Deterministic for CI: derandomize=True, no example database, no deadline, few examples.
"""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import actlib

# A local settings object rather than a loaded profile, so other test files keep theirs.
deterministic = settings(max_examples=40, deadline=None, derandomize=True, database=None)

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)
moderate = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=64)
rows = st.lists(finite, min_size=1, max_size=12)


def _t(values):
    return torch.tensor(values, dtype=torch.float64)


@deterministic
@given(rows)
def test_softmax_is_a_distribution(values):
    y = actlib.softmax(_t(values), dim=-1)
    assert (y >= 0).all() and (y <= 1).all()
    assert math.isclose(y.sum().item(), 1.0, rel_tol=1e-12)


@deterministic
@given(rows, st.floats(-1e4, 1e4, allow_nan=False, width=64))
def test_softmax_is_shift_invariant(values, shift):
    x = _t(values)
    torch.testing.assert_close(
        actlib.softmax(x + shift, dim=-1), actlib.softmax(x, dim=-1), atol=1e-9, rtol=1e-9
    )


@deterministic
@given(rows)
def test_log_softmax_is_log_of_softmax(values):
    x = _t(values)
    log_y = actlib.log_softmax(x, dim=-1)
    assert (log_y <= 0).all()
    assert math.isclose(torch.logsumexp(log_y, 0).item(), 0.0, abs_tol=1e-12)
    torch.testing.assert_close(log_y.exp(), actlib.softmax(x, dim=-1))


@deterministic
@given(rows)
def test_argmax_is_the_index_of_the_largest(values):
    x = _t(values)
    index = actlib.argmax(x, dim=0).item()
    assert x[index] == x.max() and (x[:index] < x[index]).all()


@deterministic
@given(finite)
def test_sigmoid_symmetry(value):
    x = _t([value])
    torch.testing.assert_close(actlib.sigmoid(-x), 1 - actlib.sigmoid(x), atol=1e-15, rtol=0)


@deterministic
@given(moderate)
def test_tanh_is_a_rescaled_sigmoid(value):
    x = _t([value])
    torch.testing.assert_close(actlib.tanh(x), 2 * actlib.sigmoid(2 * x) - 1, atol=1e-15, rtol=0)


@deterministic
@given(finite)
def test_tanh_is_odd_and_bounded(value):
    x = _t([value])
    y = actlib.tanh(x)
    assert torch.equal(actlib.tanh(-x), -y) and y.abs().item() <= 1


@deterministic
@given(moderate)
def test_softplus_minus_its_reflection_is_identity(value):
    """softplus(x) − softplus(−x) = x, and softplus' = sigmoid.

    With threshold out of reach: by default softplus becomes exactly x beyond βx = 20
    (torch's convention), which is off by log1p(e^{-20}) ≈ 2e-9.
    """
    x = _t([value]).requires_grad_()
    y = actlib.softplus(x, threshold=1e6)
    torch.testing.assert_close(y - actlib.softplus(-x, threshold=1e6), x, atol=1e-12, rtol=1e-12)
    (derivative,) = torch.autograd.grad(y, x)
    torch.testing.assert_close(derivative, actlib.sigmoid(x.detach()))


@deterministic
@given(finite)
def test_silu_is_x_times_sigmoid(value):
    x = _t([value])
    torch.testing.assert_close(actlib.silu(x), x * actlib.sigmoid(x))


@deterministic
@given(finite, st.floats(0.01, 0.99))
def test_rectifier_identities(value, slope):
    x = _t([value])
    torch.testing.assert_close(actlib.relu(x) - actlib.relu(-x), x)
    torch.testing.assert_close(
        actlib.leaky_relu(x, slope), actlib.relu(x) - slope * actlib.relu(-x)
    )
    weight = _t([slope])
    torch.testing.assert_close(actlib.prelu(x, weight), actlib.leaky_relu(x, slope))


@deterministic
@given(finite)
def test_selu_is_a_scaled_elu(value):
    x = _t([value])
    from actlib.elementwise import SELU_ALPHA, SELU_SCALE

    torch.testing.assert_close(actlib.selu(x), SELU_SCALE * actlib.elu(x, SELU_ALPHA))


@deterministic
@given(st.lists(finite, min_size=6, max_size=6, unique=True))
def test_maxout_is_the_group_maximum(values):
    x = _t(values)
    y = actlib.maxout(x, num_pieces=3)
    assert y.tolist() == [max(values[:3]), max(values[3:])]
