"""Bad input gets torch's behaviour or a clear error that names the problem, never a crash
deep inside actlib."""

import pytest
import torch

import actlib
from actlib.catalog import CATALOG


def _call(record, example, x, prepare):
    return record.functional(x, **prepare(record, example, torch.ones(1)))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
@pytest.mark.catalog("elementwise", "parametric", "dim", "maxout", "gated")
def test_integer_and_bool_tensors_are_refused(record, example, dtype, prepare):
    x = torch.ones(2, 6, dtype=dtype)
    with pytest.raises(TypeError, match=f"actlib.{record.name}.*dtype {dtype}"):
        _call(record, example, x, prepare)


@pytest.mark.catalog("elementwise", "parametric", "dim", "maxout", "gated", "index")
def test_non_tensors_and_complex_are_refused(record, example, prepare):
    with pytest.raises(TypeError, match="Tensor, got list"):
        record.functional([1.0, 2.0], **prepare(record, example, torch.ones(1)))
    with pytest.raises(TypeError, match="complex"):
        _call(record, example, torch.ones(2, 6, dtype=torch.complex64), prepare)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8])
def test_argmax_of_integers_is_torchs(dtype):
    x = torch.tensor([[3, 1, 3], [0, 5, 5]], dtype=dtype)
    for example in CATALOG["argmax"].examples:
        assert torch.equal(actlib.argmax(x, **example), torch.argmax(x, **example))
    with pytest.raises(TypeError, match="torch.bool"):
        actlib.argmax(x.bool(), dim=0)


@pytest.mark.catalog("elementwise", "parametric")
def test_empty_and_zero_dim_tensors(record, example, prepare):
    for x in (torch.empty(0, 3), torch.tensor(-1.5), torch.tensor(2.0)):
        kwargs = prepare(record, example, x)
        torch.testing.assert_close(record.functional(x, **kwargs), record.reference(x, **kwargs))


@pytest.mark.parametrize("dim", [2, -3, 7])
@pytest.mark.catalog("dim", "index", "maxout", "gated")
def test_dim_out_of_range(record, dim):
    x = torch.ones(2, 6)
    kwargs = {"num_pieces": 2} if record.kind == "maxout" else {}
    with pytest.raises(IndexError, match=rf"actlib.{record.name}: dim {dim} is out of range"):
        record.functional(x, dim=dim, **kwargs)


@pytest.mark.catalog("dim", "index", "maxout", "gated")
def test_dim_must_be_an_int(record):
    kwargs = {"num_pieces": 2} if record.kind == "maxout" else {}
    with pytest.raises(TypeError, match="dim must be an int, got float"):
        record.functional(torch.ones(2, 6), dim=1.0, **kwargs)


@pytest.mark.catalog("dim")
def test_softmax_needs_an_explicit_dim(record):
    with pytest.raises(TypeError, match=f"actlib.{record.name}: pass dim explicitly"):
        record.functional(torch.ones(2, 3))
    with pytest.raises(TypeError, match="pass dim explicitly"):
        record.make_module(dim=None)(torch.ones(2, 3))


def test_prelu_weight_problems():
    x = torch.ones(4, 3, 5)
    with pytest.raises(ValueError, match=r"weight has 2 slopes but the input has 3 channel"):
        actlib.prelu(x, torch.ones(2))
    with pytest.raises(ValueError, match=r"0-d or 1-d, got shape \(3, 1\)"):
        actlib.prelu(x, torch.ones(3, 1))
    with pytest.raises(
        TypeError, match="weight dtype torch.float64 differs from input dtype torch.float32"
    ):
        actlib.prelu(x, torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        actlib.prelu(x, 0.25)
    with pytest.raises(ValueError, match="weight has 3 slopes but the input has 1 channel"):
        actlib.prelu(torch.ones(5), torch.ones(3))
    with pytest.raises(ValueError, match="2 slopes but the input has 3 channel"):
        actlib.PReLU(num_parameters=2)(x)
    with pytest.raises(ValueError, match="num_parameters must be >= 1, got 0"):
        actlib.PReLU(num_parameters=0)


@pytest.mark.parametrize("beta", [0, 0.0, -1.0])
def test_softplus_beta_must_be_positive(beta):
    with pytest.raises(ValueError, match=f"beta must be positive, got {beta}"):
        actlib.softplus(torch.ones(3), beta=beta)


@pytest.mark.parametrize(
    ("function", "kwargs", "error", "message"),
    [
        (actlib.softplus, {"beta": float("nan")}, ValueError, "beta must be finite"),
        (actlib.softplus, {"threshold": float("inf")}, ValueError, "threshold must be finite"),
        (actlib.softplus, {"beta": "2"}, TypeError, "beta must be a real number, got '2'"),
        (actlib.leaky_relu, {"negative_slope": None}, TypeError, "negative_slope must be a real"),
        (actlib.leaky_relu, {"negative_slope": True}, TypeError, "negative_slope must be a real"),
        (actlib.elu, {"alpha": float("inf")}, ValueError, "alpha must be finite"),
        (
            actlib.gelu,
            {"approximate": "erf"},
            ValueError,
            "approximate must be 'none' or 'tanh', got 'erf'",
        ),
        (
            actlib.maxout,
            {"num_pieces": 4},
            ValueError,
            "size 6 of dim 1 is not divisible by num_pieces=4",
        ),
        (actlib.maxout, {"num_pieces": 0}, ValueError, "num_pieces must be a positive int, got 0"),
        (actlib.maxout, {"num_pieces": 2.0}, ValueError, "num_pieces must be a positive int"),
    ],
)
def test_bad_arguments_are_named(function, kwargs, error, message):
    with pytest.raises(error, match=message):
        function(torch.ones(2, 6), **kwargs)


def test_maxout_needs_a_dimension():
    with pytest.raises(ValueError, match="at least one dimension"):
        actlib.maxout(torch.tensor(1.0), num_pieces=1)


def test_argmax_of_nothing():
    with pytest.raises(ValueError, match="empty tensor"):
        actlib.argmax(torch.empty(0))
    with pytest.raises(ValueError, match="dimension 1 has size 0"):
        actlib.argmax(torch.empty(3, 0), dim=1)


def test_celu_alpha_at_the_ends_of_the_range():
    """A subnormal α still divides cleanly (0/α = 0); an α the dtype cannot hold is refused."""
    x = torch.tensor([-0.5, 0.0, 0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(actlib.celu(x, 1e-310), torch.tensor([-1e-310, 0.0, 0.5, 2.0],
                                                                    dtype=torch.float64))  # fmt: skip
    with pytest.raises(ValueError, match="alpha must be a nonzero number within the range of torch.float32"):
        actlib.celu(x.float(), 1e39)
    with pytest.raises(ValueError, match="alpha must be a nonzero number"):
        actlib.celu(x, 0.0)
    with pytest.raises(ValueError, match="too large for a float"):
        actlib.celu(x, 10**400)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 49.0, 98.0, 103.0, 107.0])
def test_celu_derivative_at_the_kink_is_exactly_one(alpha):
    x = torch.tensor([0.0, -0.0], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(actlib.celu(x, alpha).sum(), x)
    assert slope.tolist() == [1.0, 1.0]  # α · (1/α) would be 0.9999999999999999 for α = 49
