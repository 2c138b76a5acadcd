r"""Piecewise-linear activations for cheap hardware: hardtanh, ReLU6, hardsigmoid, hardswish.

Each replaces a smooth function by straight pieces that need only a comparison, an add
and a multiply — no ``exp`` — and whose output range is bounded, which is what an
8-bit fixed-point format needs (Sandler et al. 2018; Howard et al. 2019):

* ``hardtanh(x) = clamp(x, min_val, max_val)`` stands in for tanh, ``relu6 = clamp(x, 0, 6)``;
* ``hardsigmoid(x) = relu6(x + 3) / 6`` stands in for σ;
* ``hardswish(x) = x · relu6(x + 3) / 6`` stands in for swish, x σ(x).

Derivatives at the breakpoints, and at a NaN input, are exactly those of autograd through
torch's own ops (checked in the tests): hardtanh′ and relu6′ are 0 at both breakpoints
and pass the gradient at NaN; hardsigmoid′ is 0 at ±3 and at NaN; hardswish′ is 0 at −3,
1 at 3 and 1 at NaN. As in ``actlib.elementwise``, half precision is computed in float32
and rounded once, and hardswish(−inf) is the limit 0 (torch's kernel gives −inf · 0 = NaN);
hardswish divides by 6 before multiplying by x, so it stays finite at the largest floats
(torch's x · relu6(x + 3) overflows there first).
"""

import torch

from ._common import check_floating, eager_only_jvp, opmath
from .elementwise import _check_number, _maybe_in_place, _no_negative_inf, _save, _times


class HardtanhFunction(torch.autograd.Function):
    r"""clamp(x, lo, hi); derivative 1 for lo < x < hi, else 0 (0 at both breakpoints); saves the input.

    ``clamp`` propagates NaN, and a NaN input passes the gradient on, as torch's does.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, min_val, max_val):
        return input.clamp(min_val, max_val)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])
        ctx.bounds = inputs[1], inputs[2]

    @staticmethod
    def _pass_inside(ctx, incoming):
        (x,) = ctx.saved_tensors
        x, (low, high) = opmath(x), ctx.bounds
        # Compared in opmath, as torch does: a float16 x = 0.33325 is inside (−1/3, 1/3),
        # though the bound rounded to float16 is 0.33325 too. "Outside or on a bound"
        # rather than "inside": NaN is neither, so it passes.
        return torch.where((x <= low) | (x >= high), 0, incoming)

    @staticmethod
    def backward(ctx, grad_output):
        return HardtanhFunction._pass_inside(ctx, grad_output), None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, *_):
        return HardtanhFunction._pass_inside(ctx, tangent)


class HardsigmoidFunction(torch.autograd.Function):
    r"""relu6(x + 3) / 6; derivative 1/6 for −3 < x < 3, else 0; saves the input.

    The input, not the output, is saved: just below x = 3, x + 3 can round to 6, so the
    output reads 1 where the derivative is still 1/6.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        # clamp_min_/clamp_max_ rather than clamp_(0, 6): they have vmap batching rules.
        return opmath(input).add(3).clamp_min_(0).clamp_max_(6).div_(6).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        x = opmath(x)
        # "inside" rather than "outside": a NaN input gets 0, as in torch's kernel. The
        # mask is divided in x's dtype: a where() of two Python numbers would make 1/6 in
        # the default dtype, float32, even for a float64 x.
        return ((x > -3) & (x < 3)).to(x.dtype) / 6

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, HardsigmoidFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, HardsigmoidFunction.derivative(*ctx.saved_tensors))


class HardswishFunction(torch.autograd.Function):
    r"""x · relu6(x + 3) / 6; derivative 0 for x ≤ −3, x/3 + 1/2 for −3 < x < 3, 1 for x ≥ 3.

    The middle piece is the quadratic x(x + 3)/6, with derivative (2x + 3)/6: the
    function is continuous, its derivative jumps at both breakpoints, from 0 to −1/2 at
    x = −3 (torch takes the left-hand 0) and from 3/2 to 1 at x = 3 (the right-hand 1).
    Saves the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        x = _no_negative_inf(opmath(input))
        # x · (relu6(x + 3) / 6), dividing first: x · 6 would overflow at the largest floats.
        return x.add(3).clamp_min_(0).clamp_max_(6).div_(6).mul_(x).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        x = opmath(x)
        # Nested in torch's order, so that NaN (neither ≤ −3 nor < 3) gets the slope 1.
        return torch.where(x <= -3, 0.0, torch.where(x < 3, x / 3 + 0.5, 1.0))

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, HardswishFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, HardswishFunction.derivative(*ctx.saved_tensors))


def hardtanh(
    input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> torch.Tensor:
    r"""Hard tanh :math:`\operatorname{clamp}(x, \text{min\_val}, \text{max\_val})`.

    Derivative 1 strictly between the bounds and 0 outside and on them. A bound may be
    ±inf (no bound on that side), as in torch. ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "hardtanh")
    _check_number(min_val, "min_val", "hardtanh", allow_infinite=True)
    _check_number(max_val, "max_val", "hardtanh", allow_infinite=True)
    if min_val > max_val:
        raise ValueError(
            f"actlib.hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})"
        )
    bounds = float(min_val), float(max_val)
    return _maybe_in_place(input, inplace, "hardtanh", HardtanhFunction, *bounds)


def relu6(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""ReLU6 :math:`\min(\max(x, 0), 6)`, the hardtanh with bounds 0 and 6.

    Derivative 1 for 0 < x < 6, 0 elsewhere (0 at both kinks, as torch's).
    ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "relu6")
    return _maybe_in_place(input, inplace, "relu6", HardtanhFunction, 0.0, 6.0)


def hardsigmoid(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""Hard sigmoid :math:`\operatorname{relu6}(x + 3) / 6`, range [0, 1].

    Derivative 1/6 for −3 < x < 3, else 0 (σ′(0) = 1/4 for comparison).
    ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "hardsigmoid")
    return _maybe_in_place(input, inplace, "hardsigmoid", HardsigmoidFunction)


def hardswish(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""Hard swish :math:`x\,\operatorname{relu6}(x + 3) / 6` (Howard et al. 2019).

    Minimum −3/8 at x = −3/2. Derivative 0 for x ≤ −3, x/3 + 1/2 for −3 < x < 3, 1 for x ≥ 3.
    ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "hardswish")
    return _maybe_in_place(input, inplace, "hardswish", HardswishFunction)


# As in actlib.elementwise: torch.fx.symbolic_trace keeps each functional as one call.
for _name in ("hardtanh", "relu6", "hardsigmoid", "hardswish"):
    torch.fx.wrap(_name)
