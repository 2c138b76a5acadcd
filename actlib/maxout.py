r"""Maxout (Goodfellow et al., 2013): the maximum over groups of ``num_pieces`` features.

With the features along ``dim`` split into consecutive groups of k = ``num_pieces``,
maxout(x)_g = max_{j < k} x_{g·k + j}. A maxout layer after a linear layer learns a convex
piecewise-linear activation with k pieces; ReLU is the special case max(w·x, 0).
"""

import torch

from ._common import check_floating, eager_only_jvp, normalize_dim


def _grouped_shape(shape: torch.Size, dim: int, num_pieces: int) -> list[int]:
    return [*shape[:dim], shape[dim] // num_pieces, num_pieces, *shape[dim + 1 :]]


class MaxoutFunction(torch.autograd.Function):
    r"""Forward: max over each group; backward: the gradient goes to the winning element.

    ∂ maxout(x)_g / ∂x_i = 1 if i is the (first) arg-max of group g, else 0. Saves only
    the winners' indices.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, num_pieces, dim):
        grouped = input.reshape(_grouped_shape(input.shape, dim, num_pieces))
        values, winners = grouped.max(dim + 1)
        return values, winners

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, winners = output
        ctx.mark_non_differentiable(winners)
        ctx.save_for_backward(winners)
        ctx.save_for_forward(winners)
        ctx.input_shape = inputs[0].shape
        ctx.num_pieces, ctx.dim = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad_values, grad_winners):
        (winners,) = ctx.saved_tensors
        grouped_shape = _grouped_shape(ctx.input_shape, ctx.dim, ctx.num_pieces)
        # scatter is linear in grad_values, so the backward is itself differentiable.
        grad = grad_values.new_zeros(grouped_shape).scatter(
            ctx.dim + 1, winners.unsqueeze(ctx.dim + 1), grad_values.unsqueeze(ctx.dim + 1)
        )
        return grad.reshape(ctx.input_shape), None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, *_):
        """The winners' tangents: maxout is locally a selection, so its JVP is a gather."""
        (winners,) = ctx.saved_tensors
        grouped = tangent.reshape(_grouped_shape(ctx.input_shape, ctx.dim, ctx.num_pieces))
        return grouped.gather(ctx.dim + 1, winners.unsqueeze(ctx.dim + 1)).squeeze(
            ctx.dim + 1
        ), None


def maxout(input: torch.Tensor, num_pieces: int, dim: int = -1) -> torch.Tensor:
    r"""Maxout :math:`\mathrm{maxout}(x)_g = \max_{0 \le j < k} x_{gk + j}` over groups of k features.

    The size of ``dim`` must be divisible by k = ``num_pieces``; the output has that
    dimension divided by k. The gradient flows only to each group's maximum.
    """
    check_floating(input, "maxout")
    if isinstance(num_pieces, bool) or not isinstance(num_pieces, int) or num_pieces < 1:
        raise ValueError(f"actlib.maxout: num_pieces must be a positive int, got {num_pieces!r}")
    if input.dim() == 0:
        raise ValueError("actlib.maxout needs a tensor with at least one dimension")
    dim = normalize_dim(dim, input.dim(), "maxout")
    if input.shape[dim] % num_pieces:
        raise ValueError(
            f"actlib.maxout: size {input.shape[dim]} of dim {dim} is not divisible by "
            f"num_pieces={num_pieces}"
        )
    values, _ = MaxoutFunction.apply(input, num_pieces, dim)
    return values


torch.fx.wrap("maxout")  # one node in an fx graph; its checks need a real tensor
