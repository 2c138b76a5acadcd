r"""Functions of a whole dimension: softmax, log-softmax and argmax.

softmax turns a vector of logits into probabilities, log_softmax gives their logarithms
without ever forming a probability that could underflow, and argmax is the hard,
non-differentiable limit of softmax as its temperature goes to 0.
"""

import torch

from ._common import check_floating, eager_only_jvp, normalize_dim, opmath


def _shifted(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x − max(x) along ``dim``: the largest logit becomes 0, so ``exp`` cannot overflow.

    Softmax is invariant to the shift, and the shift carries no gradient, so it is
    applied as a constant. A dimension of size 0 has no maximum and needs no shift
    (the result is as empty as the input).
    """
    if x.shape[dim] == 0:
        return x.clone()
    return x - x.amax(dim, keepdim=True)


class SoftmaxFunction(torch.autograd.Function):
    r"""softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m} with m = max_j x_j; saves the output y.

    Jacobian ∂y_i/∂x_j = y_i (δ_ij − y_j), so the vector–Jacobian product is
    grad_in = y ⊙ (grad − ⟨grad, y⟩).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, dim):
        e = torch.exp(_shifted(opmath(input), dim))
        return (e / e.sum(dim, keepdim=True)).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)
        ctx.dim = inputs[1]

    @staticmethod
    def _jacobian_times(ctx, v):
        """J v = y ⊙ (v − ⟨v, y⟩): J is symmetric, so this is both the VJP and the JVP."""
        (y,) = ctx.saved_tensors
        y32, v32 = opmath(y), opmath(v)
        return (y32 * (v32 - (v32 * y32).sum(ctx.dim, keepdim=True))).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return SoftmaxFunction._jacobian_times(ctx, grad_output), None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, _):
        return SoftmaxFunction._jacobian_times(ctx, tangent)


class LogSoftmaxFunction(torch.autograd.Function):
    r"""log_softmax(x)_i = (x_i − m) − log Σ_j e^{x_j − m}; saves the output y.

    ∂y_i/∂x_j = δ_ij − softmax(x)_j = δ_ij − e^{y_j}, so grad_in = grad − e^{y} Σ_j grad_j.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, dim):
        z = _shifted(opmath(input), dim)
        return (z - torch.log(torch.exp(z).sum(dim, keepdim=True))).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)
        ctx.dim = inputs[1]

    @staticmethod
    def backward(ctx, grad_output):
        """gᵀJ = g − e^y Σ_j g_j (J = I − 1 softmaxᵀ is not symmetric: VJP and JVP differ)."""
        (y,) = ctx.saved_tensors
        g = opmath(grad_output)
        grad = g - torch.exp(opmath(y)) * g.sum(ctx.dim, keepdim=True)
        return grad.to(grad_output.dtype), None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, _):
        """J ẋ = ẋ − ⟨e^y, ẋ⟩: each output moves by its own tangent minus the softmax-weighted mean."""
        (y,) = ctx.saved_tensors
        t = opmath(tangent)
        return (t - (torch.exp(opmath(y)) * t).sum(ctx.dim, keepdim=True)).to(tangent.dtype)


class ArgmaxFunction(torch.autograd.Function):
    r"""Index of the first maximum along ``dim`` (NaN counts as the maximum, as in torch).

    Built from ``amax``, a comparison and ``amin`` over positions. The output is an
    integer tensor, marked non-differentiable: argmax is piecewise constant, its
    derivative is 0 almost everywhere, so nothing is saved for a backward.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, dim, keepdim):
        size = input.shape[dim]
        is_max = (input == input.amax(dim, keepdim=True)) | input.isnan()
        shape = [1] * input.dim()
        shape[dim] = size
        positions = torch.arange(size, device=input.device).reshape(shape)
        return torch.where(is_max, positions, size).amin(dim, keepdim=keepdim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output)

    @staticmethod
    def backward(ctx, grad_output):
        return None, None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, *_):
        return None  # an integer output has no tangent


def _resolve_dim(input: torch.Tensor, dim, dtype, name: str):
    check_floating(input, name)
    if dim is None:
        raise TypeError(
            f"actlib.{name}: pass dim explicitly (e.g. dim=-1 for the last dimension); "
            "PyTorch's implicit choice of dimension is deprecated"
        )
    if dtype is not None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(
                f"actlib.{name}: dtype must be a floating-point dtype (float16, bfloat16, "
                f"float32 or float64), got {dtype}; {name} is defined on real numbers only"
            )
        input = input.to(dtype)
    return input, normalize_dim(dim, input.dim(), name)


def softmax(input: torch.Tensor, dim: int | None = None, dtype=None) -> torch.Tensor:
    r"""Softmax :math:`\mathrm{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}` along ``dim``.

    Outputs are positive and sum to 1. Computed as :math:`e^{x_i - m} / \sum_j e^{x_j - m}`
    with :math:`m = \max_j x_j` so that large logits cannot overflow. Jacobian
    :math:`\partial y_i / \partial x_j = y_i(\delta_{ij} - y_j)`. ``dtype`` casts the input first.
    """
    input, dim = _resolve_dim(input, dim, dtype, "softmax")
    return SoftmaxFunction.apply(input, dim)


def log_softmax(input: torch.Tensor, dim: int | None = None, dtype=None) -> torch.Tensor:
    r"""Log-softmax :math:`x_i - \log\sum_j e^{x_j}` along ``dim``, computed with the max shift.

    Derivative :math:`\partial y_i / \partial x_j = \delta_{ij} - \mathrm{softmax}(x)_j`.
    Prefer it to ``log(softmax(x))``, which gives -inf once a probability underflows.
    """
    input, dim = _resolve_dim(input, dim, dtype, "log_softmax")
    return LogSoftmaxFunction.apply(input, dim)


def argmax(input: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    r"""Index of the largest entry, :math:`\arg\max_i x_i`, like ``torch.argmax``.

    ``dim=None`` searches the flattened tensor. Ties give the first index; NaN counts as
    the largest value. The result is an int64 tensor with no gradient.
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"actlib.argmax expects a torch.Tensor, got {type(input).__name__}")
    if input.is_complex() or input.dtype == torch.bool:
        raise TypeError(f"actlib.argmax expects a real-valued tensor, got dtype {input.dtype}")
    if dim is None:
        flat = input.reshape(-1)
        if flat.numel() == 0:
            raise ValueError("actlib.argmax: the argmax of an empty tensor is undefined")
        index = ArgmaxFunction.apply(flat, 0, False)
        return index.reshape([1] * input.dim()) if keepdim else index
    dim = normalize_dim(dim, input.dim(), "argmax")
    if input.dim() == 0:
        return ArgmaxFunction.apply(input.reshape(1), 0, False).reshape(())
    if input.shape[dim] == 0:
        raise ValueError(f"actlib.argmax: dimension {dim} has size 0, so it has no maximum")
    return ArgmaxFunction.apply(input, dim, keepdim)


# One node each in a torch.fx graph: their argument checks need real tensors, not Proxies.
for _name in ("softmax", "log_softmax", "argmax"):
    torch.fx.wrap(_name)
