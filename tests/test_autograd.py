"""Autograd machinery: gradcheck, gradgradcheck, torch.func (vmap, jacrev, grad), saved tensors.

Everything here runs in float64 on small tensors, parametrised from the catalog.
"""

import pytest
import torch
from smooth_inputs import smooth_input
from torch.func import grad, jacrev, vmap

DIFFERENTIABLE = ("elementwise", "parametric", "dim", "maxout", "gated")


def _arguments(record, example, x, prepare):
    kwargs = prepare(record, example, x)
    if record.kind == "parametric" and x.dim() >= 2:
        channels = x.shape[1]
        kwargs["weight"] = torch.linspace(-0.5, 0.5, channels, dtype=x.dtype, device=x.device)
    return kwargs


@pytest.mark.catalog(*DIFFERENTIABLE)
def test_gradcheck_and_gradgradcheck(record, example, device, prepare):
    x = smooth_input((3, 2, 6), device).requires_grad_()
    kwargs = _arguments(record, example, x, prepare)
    if record.kind == "parametric":
        weight = kwargs.pop("weight").requires_grad_()
        inputs = (x, weight)

        def function(x, weight):
            return record.functional(x, weight)
    else:
        inputs = (x,)

        def function(x):
            return record.functional(x, **kwargs)

    assert torch.autograd.gradcheck(function, inputs)
    assert torch.autograd.gradgradcheck(function, inputs)


@pytest.mark.catalog()
def test_vmap_matches_loop(record, example, device, prepare):
    x = smooth_input(device=device)
    kwargs = prepare(record, example, x)
    batched = vmap(lambda row: record.functional(row, **kwargs))(x)
    looped = torch.stack([record.functional(row, **kwargs) for row in x])
    torch.testing.assert_close(batched, looped, rtol=0, atol=0)


@pytest.mark.catalog(*DIFFERENTIABLE)
def test_jacrev_matches_autograd_and_torch(record, example, device, prepare, call_reference):
    x = smooth_input((6, 6), device)
    kwargs = _arguments(record, example, x, prepare)

    def actlib_function(x):
        return record.functional(x, **kwargs)

    def reference_function(x):
        return call_reference(record, x, kwargs)

    jacobian = jacrev(actlib_function)(x)
    torch.testing.assert_close(jacobian, torch.autograd.functional.jacobian(actlib_function, x))
    torch.testing.assert_close(jacobian, torch.autograd.functional.jacobian(reference_function, x))


@pytest.mark.catalog(*DIFFERENTIABLE)
def test_func_grad_of_scalar(record, example, device, prepare, call_reference):
    x = smooth_input(device=device)
    kwargs = _arguments(record, example, x, prepare)
    def loss(function):
        def weighted_sum(x):
            y = function(x)  # maxout and the gated units are smaller than x
            weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype, device=device)
            return (y * weights.reshape(y.shape)).sum()
        return weighted_sum

    got = grad(loss(lambda x: record.functional(x, **kwargs)))(x)
    x_ = x.clone().requires_grad_()
    loss(lambda x: call_reference(record, x, kwargs))(x_).backward()
    torch.testing.assert_close(got, x_.grad)


def _large_grid(device):
    """float64 grid with large |x|, stepping over the kinks (x = 0, softplus's βx = threshold).

    At a kink the second derivative is a convention, and torch's double backward does not
    even follow its own first derivative's side there (ELU'(0) = α from the left branch,
    ELU''(0) = 0 from the right): first derivatives at kinks are checked in test_reference.
    """
    ordinary = torch.linspace(-12, 12, 97, dtype=torch.float64) + 0.125
    large = torch.tensor([30.0, 50, 100, 1e3, 1e4, 1e5, 1e10, 1e30, 1e100], dtype=torch.float64)
    return torch.cat([-large.flip(0), ordinary, large]).to(device)


@pytest.mark.catalog("elementwise", "parametric")
def test_second_derivative_matches_torch(record, example, device, prepare, call_reference):
    """d²f/dx² by double backward (create_graph) equals torch's, finite where torch's is."""
    x = _large_grid(device)
    kwargs = prepare(record, example, x)

    def second(function):
        x_ = x.clone().requires_grad_()
        (first,) = torch.autograd.grad(function(x_).sum(), x_, create_graph=True)
        if not first.requires_grad:  # piecewise-linear: the derivative is constant
            return torch.zeros_like(x)
        (second_,) = torch.autograd.grad(first.sum(), x_)
        return second_

    got = second(lambda x: record.functional(x, **kwargs))
    if record.name == "hardsigmoid":  # torch's hardsigmoid_backward has no derivative
        want = torch.zeros_like(x)  # piecewise linear, and the grid avoids ±3
    else:
        want = second(lambda x: call_reference(record, x, kwargs))
    finite = want.isfinite()
    assert got[finite].isfinite().all(), f"not finite at {x[finite & ~got.isfinite()]}"
    torch.testing.assert_close(got[finite], want[finite])


EXPECTED_SAVED = {"parametric": 2, "index": 0}


@pytest.mark.catalog()
def test_saves_only_what_backward_needs(record, example, prepare):
    """One saved tensor per Function (PReLU: input and weight; argmax: none; maxout: indices)."""
    x = smooth_input().float().requires_grad_()
    kwargs = _arguments(record, example, x, prepare)
    if record.kind == "parametric":
        kwargs["weight"].requires_grad_()
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = record.functional(x, **kwargs)
    assert len(saved) == EXPECTED_SAVED.get(record.kind, 1), [t.shape for t in saved]
    if record.kind == "maxout":
        assert saved[0].dtype == torch.int64  # the winners' indices, not a float tensor
    if record.kind == "index":
        assert output.dtype == torch.int64 and output.grad_fn is None
