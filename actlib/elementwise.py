r"""Element-wise activations as ``torch.autograd.Function``\ s with hand-derived backwards.

Each Function is built from elementary tensor ops (``exp``, ``expm1``, ``log1p``, ``erfc``,
``where``, ``clamp`` …), never from the PyTorch op it re-implements. Conventions shared by
all of them:

* **Modern style**: ``forward`` + ``setup_context``, ``generate_vmap_rule = True``, so they
  work under ``torch.func.vmap``, ``grad`` and ``jacrev``.
* **Second derivatives**: ``backward`` is written with differentiable ops (or calls other
  actlib Functions), so ``create_graph=True`` and ``gradgradcheck`` work.
* **Save one tensor**: the output where the derivative is a function of it
  (σ' = σ(1 − σ), tanh' = 1 − tanh², ReLU's mask), else the input.
* **Half precision**: float16/bfloat16 are computed in float32 and rounded once.
* **Special values**: NaN in gives NaN out; at ±inf the result is the mathematical limit,
  also where PyTorch's own kernel returns NaN (``silu(-inf)``, ``softsign(inf)``…).
* **Kinks** take PyTorch's one-sided derivative: ReLU'(0) = 0, LeakyReLU'(0) = slope,
  ELU'(0) = α.
"""

import math
from numbers import Real

import torch

from ._common import check_floating, eager_only_jvp, opmath

# ---------------------------------------------------------------------------
# Stable building blocks shared by several Functions (plain tensor code, no autograd).
# ---------------------------------------------------------------------------


def _finite(x: torch.Tensor) -> torch.Tensor:
    """Clamp ±inf to the largest finite values (NaN stays NaN).

    Used in derivatives with a term ``x · h(x)`` whose ``h`` vanishes at ±inf:
    ``±inf · 0`` would be NaN, while the limit of the product is 0.
    """
    big = torch.finfo(x.dtype).max
    return x.clamp(-big, big)


def _no_negative_inf(x: torch.Tensor) -> torch.Tensor:
    """Clamp -inf to the most negative finite value (NaN and +inf stay).

    Used where an activation is ``x · gate(x)``: at ``x = -inf`` the gate is exactly 0
    and ``-inf · 0`` would be NaN, while the limit of the product is 0.
    """
    return x.clamp_min(torch.finfo(x.dtype).min)


def _sigmoid(z: torch.Tensor) -> torch.Tensor:
    r"""σ(z) = 1 / (1 + e^{-z}) as a new tensor; where e^{-z} overflows it gives 0.

    That 0 is exact in the limit and within the dtype's smallest normal number below it:
    in float32, e^{-z} overflows for z < −88.7, where σ(z) < 3e-39 (float32 subnormals
    reach 1.4e-45, so σ(−100) = 3.7e-44 becomes 0). Accepting that absolute error of
    less than 1.2e-38 keeps σ at four plain passes, without a branch per sign.

    Works in place on its own temporary, so only for forwards (which run without
    autograd); derivatives call :class:`SigmoidFunction` instead.
    """
    return z.neg().exp_().add_(1).reciprocal_()


def _log1pexp(z: torch.Tensor, differentiable: bool = True) -> torch.Tensor:
    r"""log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}), finite for every finite z.

    The naive ``log(1 + exp(z))`` overflows to inf for z ≳ 88.7 in float32; here ``exp``
    only sees −|z| ≤ 0. Written without a ``torch.where`` (a masked select costs several
    plain passes on the CPU). ``differentiable=False`` works in place on one temporary
    (a forward, which runs without autograd, needs no more memory than that);
    :class:`MishFunction`'s derivative uses the differentiable form.
    """
    if differentiable:
        # max(z, 0) as (z + |z|)/2, the same values for finite z (give it no ±inf):
        # autograd then gives the derivative ½ at z = 0 that log(1 + e^z) has, where
        # clamp_min's would be 1 (which made Mish″(0) wrong).
        return torch.log1p(torch.exp(-z.abs())) + (0.5 * z + 0.5 * z.abs())
    return z.abs().neg_().exp_().log1p_().add_(z.clamp_min(0))


def _check_number(value, what: str, name: str, allow_infinite: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"actlib.{name}: {what} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float64, e.g. 10**400
        raise ValueError(f"actlib.{name}: {what} is too large for a float, got {value!r}") from None
    if math.isnan(value) or (math.isinf(value) and not allow_infinite):
        raise ValueError(f"actlib.{name}: {what} must be finite, got {value!r}")


# ---------------------------------------------------------------------------
# Squashing functions
# ---------------------------------------------------------------------------


def _save(ctx, *tensors) -> None:
    """Keep ``tensors`` for the backward (reverse mode) and for the jvp (forward mode)."""
    ctx.save_for_backward(*tensors)
    ctx.save_for_forward(*tensors)


def _times(incoming: torch.Tensor, derivative: torch.Tensor) -> torch.Tensor:
    """``incoming ⊙ f′`` in opmath, rounded to ``incoming``'s dtype.

    For an element-wise f the Jacobian is diagonal, so this one product is both the
    vector–Jacobian product (``incoming`` = grad_output) and the Jacobian–vector product
    (``incoming`` = the tangent): forward and reverse mode share one derivative.
    """
    return (opmath(incoming) * derivative).to(incoming.dtype)


class SigmoidFunction(torch.autograd.Function):
    r"""σ(x) = 1 / (1 + e^{-x}), with σ'(x) = σ(x)(1 − σ(x)); saves the output."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        return _sigmoid(opmath(input)).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, output)

    @staticmethod
    def derivative(y: torch.Tensor) -> torch.Tensor:
        y32 = opmath(y)
        return y32 * (1 - y32)

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, SigmoidFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, SigmoidFunction.derivative(*ctx.saved_tensors))


class TanhFunction(torch.autograd.Function):
    r"""tanh(x) = sign(x) · (1 − e^{-2|x|}) / (1 + e^{-2|x|}), tanh' = 1 − tanh²; saves the output.

    Written with ``expm1`` so that small |x| keeps full relative precision
    (tanh(x) ≈ x) and large |x| reaches ±1 without the inf/inf = NaN of
    (e^x − e^{-x}) / (e^x + e^{-x}).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        x = opmath(input)
        m = x.abs().mul_(-2).expm1_()  # e^{-2|x|} − 1, in (-1, 0]
        # -m / (2 + m), then the sign of x; one temporary besides the result.
        return m.div_(m.add(2)).neg_().copysign_(x).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, output)

    @staticmethod
    def derivative(y: torch.Tensor) -> torch.Tensor:
        y32 = opmath(y)
        return 1 - y32 * y32

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, TanhFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, TanhFunction.derivative(*ctx.saved_tensors))


class SoftsignFunction(torch.autograd.Function):
    r"""softsign(x) = x / (1 + |x|), softsign'(x) = 1 / (1 + |x|)²; saves the input.

    ±inf maps to ±1 (PyTorch's ``F.softsign`` gives inf/inf = NaN there): the input is
    first clamped to the finite range, where x / (1 + |x|) already rounds to ±1.

    The derivative is also a function of the output, (1 − |y|)², but 1 − |y| cancels
    for large |x| (y rounds to 1 long before 1/(1 + |x|)² underflows), so the input is
    saved for precision.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        y = _finite(opmath(input))
        return y.div_(y.abs().add_(1)).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        denominator = 1 + opmath(x).abs()
        return 1 / (denominator * denominator)

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, SoftsignFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, SoftsignFunction.derivative(*ctx.saved_tensors))


# ---------------------------------------------------------------------------
# Rectifiers
# ---------------------------------------------------------------------------


def _rectified(x: torch.Tensor, negative_slope) -> torch.Tensor:
    """max(x, 0) + a · min(x, 0): x for x > 0, a·x otherwise, exactly.

    Each term is 0 on the other side of the kink, and adding 0 is exact, so this equals
    ``where(x > 0, x, a·x)`` bit for bit, without the boolean mask that a ``where``
    costs (a masked select is several plain passes on the CPU). ``a`` may be a number or
    a tensor that broadcasts against ``x``.
    """
    return x.clamp_min(0).add_(x.clamp_max(0).mul_(negative_slope))


class ReLUFunction(torch.autograd.Function):
    r"""relu(x) = max(x, 0); relu'(x) = 1 for x > 0 else 0 (0 at the kink, as PyTorch).

    Saves the output: y > 0 exactly where x > 0. ``clamp_min`` (unlike a ``where`` on
    ``x > 0``) propagates NaN.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        return input.clamp_min(0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, output)

    @staticmethod
    def _pass_where_positive(ctx, incoming):
        (y,) = ctx.saved_tensors
        # `y <= 0` rather than `y > 0`: a NaN output passes the gradient on, as in PyTorch.
        return torch.where(y <= 0, 0, incoming)

    @staticmethod
    def backward(ctx, grad_output):
        return ReLUFunction._pass_where_positive(ctx, grad_output)

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return ReLUFunction._pass_where_positive(ctx, tangent)


class SquaredReLUFunction(torch.autograd.Function):
    r"""relu(x)² = max(x, 0)², derivative 2 max(x, 0) (0 at the kink); saves the input.

    The derivative calls :class:`ReLUFunction`, so the second derivative 2·[x > 0] follows.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        r = opmath(input).clamp_min(0)
        return r.mul_(r).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return 2 * ReLUFunction.apply(opmath(x))

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, SquaredReLUFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, SquaredReLUFunction.derivative(*ctx.saved_tensors))


class LeakyReLUFunction(torch.autograd.Function):
    r"""leaky_relu(x) = x for x > 0 else a·x; derivative 1 or a (a at the kink); saves the input."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, negative_slope):
        if negative_slope == 0:  # 0·(±inf) would be NaN: this is ReLU
            return input.clamp_min(0)
        return _rectified(input, negative_slope)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])
        ctx.negative_slope = inputs[1]

    @staticmethod
    def _slope_times(ctx, incoming):
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, incoming, incoming * ctx.negative_slope)

    @staticmethod
    def backward(ctx, grad_output):
        return LeakyReLUFunction._slope_times(ctx, grad_output), None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, _):
        return LeakyReLUFunction._slope_times(ctx, tangent)


class RReLUFunction(torch.autograd.Function):
    r"""rrelu(x) = x · s for a given per-element slope s (1 where x > 0); derivative s.

    The slopes are drawn outside, by :func:`rrelu`, and saved: the backward multiplies by
    the very slopes the forward used, never by a fresh draw. Saves only the slopes.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, slopes):
        return (opmath(input) * slopes).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[1])

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, *ctx.saved_tensors), None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, _):
        return _times(tangent, *ctx.saved_tensors)


def _broadcast_prelu_weight(weight: torch.Tensor, ndim: int) -> torch.Tensor:
    """Shape the per-channel weight so it broadcasts along dim 1 of the input."""
    if weight.numel() == 1 or ndim < 2:
        return weight.reshape(())
    return weight.reshape(-1, *([1] * (ndim - 2)))


class PReLUFunction(torch.autograd.Function):
    r"""prelu(x, a) = x for x > 0 else a_c·x, with a learnable slope per channel c (dim 1).

    ∂/∂x = 1 or a_c; ∂/∂a_c = Σ over the channel's elements with x ≤ 0 of x · grad.
    Saves the input and the weight (both derivatives need both).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, weight):
        return _rectified(input, _broadcast_prelu_weight(weight, input.dim()))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, *inputs)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        slope = _broadcast_prelu_weight(weight, x.dim())
        positive = x > 0
        grad_input = torch.where(positive, grad_output, grad_output * slope)
        per_element = opmath(torch.where(positive, 0, x * grad_output))
        if weight.numel() == 1 or x.dim() < 2:
            grad_weight = per_element.sum()
        else:
            grad_weight = per_element.sum([d for d in range(x.dim()) if d != 1])
        return grad_input, grad_weight.to(weight.dtype).reshape(weight.shape)

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, input_tangent, weight_tangent):
        r"""ẏ = ẋ (x > 0) or a_c ẋ + ȧ_c x (x ≤ 0): the product rule on a_c · x."""
        x, weight = ctx.saved_tensors
        positive = x > 0
        tangent = torch.zeros_like(x)
        if input_tangent is not None:
            slope = _broadcast_prelu_weight(weight, x.dim())
            tangent = torch.where(positive, input_tangent, input_tangent * slope)
        if weight_tangent is not None:
            slope_tangent = _broadcast_prelu_weight(weight_tangent, x.dim())
            tangent = tangent + torch.where(positive, 0, x * slope_tangent)
        return tangent


class ELUFunction(torch.autograd.Function):
    r"""scale · (x for x > 0 else α(e^{x/d} − 1)); derivative scale · (1 or (α/d) e^{x/d}); saves the input.

    With scale = d = 1 this is ELU; with the SELU constants it is SELU; with d = α
    (``divisor``) it is CELU, whose derivative e^{x/α} is 1 at the kink for every α: α/d
    is then exactly 1 (x/x is), where α · (1/α) may round to 0.9999999999999999.
    ``expm1`` keeps precision near 0; ``exp`` in the derivative only ever sees
    ``min(x, 0)`` so it cannot overflow into the branch that is thrown away.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, alpha, scale, divisor=1.0):
        x = opmath(input)
        # max(x, 0) + α(e^{min(x, 0)/d} − 1): each term is 0 on the other side of the kink, so
        # no torch.where is needed (a masked select costs several plain passes on the CPU).
        # Dividing (not multiplying by 1/d) keeps 0/d = 0 for a tiny d, where 1/d is inf.
        negative = x.clamp_max(0)
        if divisor != 1:
            negative.div_(divisor)
        y = negative.expm1_().mul_(alpha).add_(x.clamp_min(0))
        return (y.mul_(scale) if scale != 1 else y).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])
        ctx.alpha, ctx.scale = inputs[1], inputs[2]
        ctx.divisor = inputs[3] if len(inputs) > 3 else 1.0

    @staticmethod
    def derivative(ctx) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        x32 = opmath(x)
        d = ctx.divisor
        # `x <= 0` rather than `x > 0`: at a NaN input the gradient passes on scaled, as in PyTorch.
        slope = torch.where(x32 <= 0, (ctx.alpha / d) * torch.exp(x32.clamp_max(0) / d), 1)
        return slope * ctx.scale

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, ELUFunction.derivative(ctx)), None, None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, *_):
        return _times(tangent, ELUFunction.derivative(ctx))


# ---------------------------------------------------------------------------
# Smooth rectifiers
# ---------------------------------------------------------------------------


class SoftplusFunction(torch.autograd.Function):
    r"""softplus(x) = log(1 + e^{βx}) / β, linear (= x) where βx > threshold; derivative σ(βx).

    Saves the input. The derivative calls :class:`SigmoidFunction`, so the second
    derivative β σ(1 − σ) comes out stable too.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, beta, threshold):
        x = opmath(input)
        z = x * beta if beta != 1 else x
        smooth = _log1pexp(z, differentiable=False)
        if beta != 1:
            smooth.div_(beta)
        return torch.where(z > threshold, x, smooth).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])
        ctx.beta, ctx.threshold = inputs[1], inputs[2]

    @staticmethod
    def _times_derivative(ctx, incoming):
        (x,) = ctx.saved_tensors
        z = opmath(x) * ctx.beta
        g = opmath(incoming)
        return torch.where(z > ctx.threshold, g, g * SigmoidFunction.apply(z)).to(incoming.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return SoftplusFunction._times_derivative(ctx, grad_output), None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, *_):
        return SoftplusFunction._times_derivative(ctx, tangent)


class SiLUFunction(torch.autograd.Function):
    r"""silu(x) = x σ(x), silu'(x) = σ(x) (1 + x (1 − σ(x))); saves the input."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        x = _no_negative_inf(opmath(input))
        return _sigmoid(x).mul_(x).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        x = opmath(x)
        s = SigmoidFunction.apply(x)
        # x (1 − σ), worked on in place; nan_to_num_ takes 0·inf = NaN at x = +inf to 0 and
        # −inf at x = −inf to the most negative float, so that σ · (1 + ·) gives the
        # limits 1 and 0 (NaN from a NaN input survives in σ).
        inner = (1 - s).mul_(x).nan_to_num_(nan=0.0)
        return s * inner.add_(1)

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, SiLUFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, SiLUFunction.derivative(*ctx.saved_tensors))


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_TANH_GELU_SCALE = math.sqrt(2 / math.pi)
_TANH_GELU_CUBIC = 0.044715


def _tanh_gelu_argument(x: torch.Tensor) -> torch.Tensor:
    """u = √(2/π)(x + 0.044715 x³), as a new tensor, worked on in place."""
    return (x * x).mul_(x).mul_(_TANH_GELU_CUBIC).add_(x).mul_(_TANH_GELU_SCALE)


class GELUFunction(torch.autograd.Function):
    r"""gelu(x) = x Φ(x), gelu'(x) = Φ(x) + x φ(x); or the tanh approximation.

    Φ(x) = ½ erfc(−x/√2) is the standard normal CDF (``erfc`` keeps the far negative tail
    accurate, where 1 + erf(x/√2) cancels to 0) and φ(x) = e^{−x²/2}/√(2π) its density.
    With ``approximate='tanh'``: u = √(2/π)(x + 0.044715 x³),
    gelu ≈ ½ x (1 + tanh u) = x σ(2u) and gelu' ≈ σ(2u) + 2x σ(2u) σ(−2u) u', the same
    functions written with σ: 1 + tanh u cancels in the left tail (30 % off at x = −5 in
    float32, exactly 0 from about x = −7.2 in float64), σ(2u) keeps its relative precision
    there. Saves the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, approximate):
        x = _no_negative_inf(opmath(input))
        if approximate == "tanh":
            cdf = _sigmoid(_tanh_gelu_argument(x).mul_(2))
        else:
            cdf = (x * -_SQRT_HALF).erfc_().mul_(0.5)
        return cdf.mul_(x).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])
        ctx.approximate = inputs[1]

    @staticmethod
    def derivative(x: torch.Tensor, approximate: str) -> torch.Tensor:
        x = opmath(x)
        if approximate == "tanh":
            # Beyond |x| = 30, σ(2u) σ(−2u) has underflowed to 0 even in float64 (2|u| > 1900)
            # while x² in u′ would overflow for huge x (inf · 0 = NaN): bound x there.
            xb = x.clamp(-30, 30)
            two_u = 2 * _tanh_gelu_argument(xb)
            s, s_neg = SigmoidFunction.apply(two_u), SigmoidFunction.apply(-two_u)
            du = _TANH_GELU_SCALE * (1 + 3 * _TANH_GELU_CUBIC * xb * xb)
            return s + 2 * xb * s * s_neg * du
        # Φ(x) + x φ(x) with three temporaries: in place where autograd allows (never on
        # exp's result, which its backward keeps). At x = ±inf, x φ(x) is inf · 0 = NaN:
        # nan_to_num_ gives its limit 0 (a NaN input stays NaN through Φ).
        derivative = (x * -_SQRT_HALF).erfc_().mul_(0.5)
        density = (x * x).mul_(-0.5).exp_()
        second = (x * _INV_SQRT_2PI).mul_(density).nan_to_num_(nan=0.0)
        return derivative.add_(second)

    @staticmethod
    def backward(ctx, grad_output):
        derivative = GELUFunction.derivative(*ctx.saved_tensors, ctx.approximate)
        return _times(grad_output, derivative), None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, _):
        return _times(tangent, GELUFunction.derivative(*ctx.saved_tensors, ctx.approximate))


QUICK_GELU_SCALE = 1.702


class QuickGELUFunction(torch.autograd.Function):
    r"""quick_gelu(x) = x σ(1.702 x) = silu(1.702 x) / 1.702; derivative silu′(1.702 x).

    σ(1.702 x) is within 0.01 of Φ(x) everywhere (Hendrycks & Gimpel 2016), the GELU
    approximation CLIP was trained with. Saves the input.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        x = _no_negative_inf(opmath(input))
        return _sigmoid(x * QUICK_GELU_SCALE).mul_(x).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        # d/dx [silu(kx)/k] = silu′(kx): SiLU's derivative, stable at ±inf, reused.
        return SiLUFunction.derivative(opmath(x) * QUICK_GELU_SCALE)

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, QuickGELUFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, QuickGELUFunction.derivative(*ctx.saved_tensors))


class MishFunction(torch.autograd.Function):
    r"""mish(x) = x tanh(softplus(x)), mish'(x) = tanh(sp) + x σ(x) (1 − tanh²(sp)); saves the input.

    σ(x) appears because softplus'(x) = σ(x).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input):
        x = opmath(input)
        # -inf · tanh(softplus(-inf)) = -inf · 0 would be NaN; the limit is 0.
        return _log1pexp(x, differentiable=False).tanh_().mul_(_no_negative_inf(x)).to(input.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save(ctx, inputs[0])

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        x = opmath(x)
        t = torch.tanh(_log1pexp(_finite(x)))  # (z + |z|)/2 in _log1pexp is NaN at -inf
        # x σ(x) (1 − t²); at x = ±inf one factor is 0 and x is infinite, so the product
        # is NaN where its limit is 0: nan_to_num_ (a NaN input stays NaN through t).
        second = x * SigmoidFunction.apply(x)
        second.mul_((t * t).neg_().add_(1)).nan_to_num_(nan=0.0)
        return t + second

    @staticmethod
    def backward(ctx, grad_output):
        return _times(grad_output, MishFunction.derivative(*ctx.saved_tensors))

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent):
        return _times(tangent, MishFunction.derivative(*ctx.saved_tensors))


# ---------------------------------------------------------------------------
# Functional forms: torch.nn.functional's signatures and defaults.
# ---------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _maybe_in_place(input: torch.Tensor, inplace: bool, name: str, function, *args) -> torch.Tensor:
    """``function`` applied to ``input`` (and ``args``), or with ``inplace=True`` its result
    written into ``input``, as torch's in-place activations do.

    The in-place form returns ``input`` itself, overwritten. It honours autograd's rules
    as torch's in-place activations do: a leaf that requires grad is refused, and a later
    backward that needs the overwritten values raises, since ``copy_`` bumps the tensor's
    version counter. When ``input`` requires grad the Function runs on a copy, so what it
    saves for its own backward is never the tensor being overwritten.
    """
    if not isinstance(inplace, bool):
        raise TypeError(f"actlib.{name}: inplace must be True or False, got {inplace!r}")
    if not inplace:
        return function.apply(input, *args)
    source = input.clone() if input.requires_grad else input
    return input.copy_(function.apply(source, *args))


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    r"""Logistic sigmoid :math:`\sigma(x) = \frac{1}{1 + e^{-x}}`, range (0, 1).

    Derivative :math:`\sigma'(x) = \sigma(x)\,(1 - \sigma(x))`, at most 1/4 (at x = 0).
    """
    check_floating(input, "sigmoid")
    return SigmoidFunction.apply(input)


def tanh(input: torch.Tensor) -> torch.Tensor:
    r"""Hyperbolic tangent :math:`\tanh x = \frac{e^x - e^{-x}}{e^x + e^{-x}} = 2\sigma(2x) - 1`.

    Range (−1, 1), zero-centred. Derivative :math:`1 - \tanh^2 x`, at most 1 (at x = 0).
    """
    check_floating(input, "tanh")
    return TanhFunction.apply(input)


def softsign(input: torch.Tensor) -> torch.Tensor:
    r"""Softsign :math:`\frac{x}{1 + |x|}`, range (−1, 1).

    Derivative :math:`\frac{1}{(1 + |x|)^2}`: polynomial, not exponential, saturation.
    """
    check_floating(input, "softsign")
    return SoftsignFunction.apply(input)


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""Rectified linear unit :math:`\max(x, 0)`.

    Derivative 1 for x > 0 and 0 for x ≤ 0 (PyTorch's and JAX's convention at the kink).
    ``inplace=True`` overwrites ``input`` with the result and returns it, as torch's does.
    """
    check_floating(input, "relu")
    return _maybe_in_place(input, inplace, "relu", ReLUFunction)


def squared_relu(input: torch.Tensor) -> torch.Tensor:
    r"""Squared ReLU :math:`\max(x, 0)^2` (So et al. 2021, Primer).

    Derivative :math:`2\max(x, 0)`: continuous, 0 at the kink, unbounded above.
    """
    check_floating(input, "squared_relu")
    return SquaredReLUFunction.apply(input)


def leaky_relu(
    input: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False
) -> torch.Tensor:
    r"""Leaky ReLU :math:`x` for x > 0, :math:`a\,x` otherwise (a = ``negative_slope``).

    Derivative 1 for x > 0, a for x ≤ 0. ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "leaky_relu")
    _check_number(negative_slope, "negative_slope", "leaky_relu")
    slope = float(negative_slope)
    return _maybe_in_place(input, inplace, "leaky_relu", LeakyReLUFunction, slope)


RRELU_LOWER, RRELU_UPPER = 1 / 8, 1 / 3


def rrelu(
    input: torch.Tensor,
    lower: float = RRELU_LOWER,
    upper: float = RRELU_UPPER,
    training: bool = False,
    inplace: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Randomized leaky ReLU (Xu et al. 2015): x for x > 0, a·x otherwise.

    In training each element with x ≤ 0 gets its own slope a ~ U(``lower``, ``upper``),
    drawn from ``generator`` (on the generator's device, then moved, so a CPU generator
    gives the same slopes on every device) or from the global generator; the backward
    uses the slopes that were drawn. Out of training (the default, as in
    ``torch.nn.functional.rrelu``) a is the mean slope (lower + upper) / 2: a leaky ReLU.
    ``inplace=True`` overwrites ``input``. Under ``torch.compile(fullgraph=True)`` pass no
    ``generator`` (Dynamo cannot trace a call that takes one; the global one works).
    """
    check_floating(input, "rrelu")
    _check_number(lower, "lower", "rrelu")
    _check_number(upper, "upper", "rrelu")
    if lower > upper:
        raise ValueError(
            f"actlib.rrelu: lower ({lower}) cannot be greater than upper ({upper})"
        )
    if not isinstance(training, bool):
        raise TypeError(f"actlib.rrelu: training must be True or False, got {training!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"actlib.rrelu: generator must be a torch.Generator, got {type(generator).__name__}"
        )
    if not training:
        if generator is not None:
            raise ValueError("actlib.rrelu: a generator is only used in training (training=True)")
        mean_slope = (float(lower) + float(upper)) / 2
        return _maybe_in_place(input, inplace, "rrelu", LeakyReLUFunction, mean_slope)
    x = opmath(input)
    where = generator.device if generator is not None else x.device
    # empty_like, not empty(x.shape): under vmap(randomness="different") it is batched too.
    drawn = torch.empty_like(x, device=where)
    drawn = drawn.uniform_(float(lower), float(upper), generator=generator).to(x.device)
    # `x <= 0` rather than `x > 0`: NaN keeps slope 1, as torch's noise does.
    slopes = torch.where(x <= 0, drawn, 1.0)
    return _maybe_in_place(input, inplace, "rrelu", RReLUFunction, slopes)


def prelu(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Parametric ReLU :math:`x` for x > 0, :math:`a_c\,x` otherwise, with learnable :math:`a_c`.

    ``weight`` holds one slope, or one per channel (dim 1 of ``input``) as in
    ``torch.nn.functional.prelu``. Derivatives: ∂/∂x = 1 or a_c, ∂/∂a_c = Σ_{x ≤ 0} x.
    """
    check_floating(input, "prelu")
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        raise TypeError("actlib.prelu: weight must be a floating-point tensor")
    if weight.dtype != input.dtype and torch.is_autocast_enabled(input.device.type):
        # Under autocast the input arrives in float16/bfloat16 while the slope parameter
        # stays float32: compute in the input's dtype, as torch.nn.PReLU does.
        weight = weight.to(input.dtype)
    if weight.dtype != input.dtype:
        raise TypeError(
            f"actlib.prelu: weight dtype {weight.dtype} differs from input dtype {input.dtype}"
        )
    if weight.dim() > 1:
        raise ValueError(
            f"actlib.prelu: weight must be 0-d or 1-d, got shape {tuple(weight.shape)}"
        )
    channels = input.shape[1] if input.dim() >= 2 else 1
    if weight.numel() not in (1, channels):
        raise ValueError(
            f"actlib.prelu: weight has {weight.numel()} slopes but the input has {channels} "
            f"channel(s) along dim 1; give one slope or one per channel"
        )
    return PReLUFunction.apply(input, weight)


def elu(input: torch.Tensor, alpha: float = 1.0, inplace: bool = False) -> torch.Tensor:
    r"""Exponential linear unit :math:`x` for x > 0, :math:`\alpha(e^x - 1)` otherwise.

    Derivative 1 for x > 0 and :math:`\alpha e^x` for x ≤ 0 (so α at the kink; with α = 1
    the derivative is continuous). ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "elu")
    _check_number(alpha, "alpha", "elu")
    alpha = float(alpha)
    return _maybe_in_place(input, inplace, "elu", ELUFunction, alpha, 1.0)


def celu(input: torch.Tensor, alpha: float = 1.0, inplace: bool = False) -> torch.Tensor:
    r"""Continuously differentiable ELU (Barron 2017): :math:`\max(x, 0) + \min(0, \alpha(e^{x/\alpha} - 1))`.

    Derivative 1 for x > 0 and :math:`e^{x/\alpha}` for x ≤ 0: 1 at the kink for every α,
    so CELU is C¹ where ELU is only for α = 1 (and CELU = ELU at α = 1). ``alpha`` must
    not be 0. ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "celu")
    _check_number(alpha, "alpha", "celu")
    alpha = float(alpha)
    # The input is divided by α in the dtype the arithmetic runs in (float32 for the
    # half types): α must be a nonzero finite number there, or 0/α and α·0 turn into NaN.
    computed = torch.tensor(alpha, dtype=opmath(torch.empty(0, dtype=input.dtype)).dtype)
    if alpha == 0 or computed == 0 or not computed.isfinite():
        raise ValueError(
            f"actlib.celu: alpha must be a nonzero number within the range of "
            f"{computed.dtype} (the input is divided by it), got {alpha!r}"
        )
    return _maybe_in_place(input, inplace, "celu", ELUFunction, alpha, 1.0, alpha)


def selu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""Scaled ELU :math:`\lambda x` for x > 0, :math:`\lambda\alpha(e^x - 1)` otherwise.

    λ ≈ 1.0507 and α ≈ 1.6733 are chosen so that activations of a deep net with
    LeCun-normal weights keep zero mean and unit variance. ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "selu")
    return _maybe_in_place(input, inplace, "selu", ELUFunction, SELU_ALPHA, SELU_SCALE)


def softplus(input: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    r"""Softplus :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, a smooth ReLU; = x where βx > threshold.

    Derivative :math:`\sigma(\beta x)`. ``beta`` must be positive.
    """
    check_floating(input, "softplus")
    _check_number(beta, "beta", "softplus")
    _check_number(threshold, "threshold", "softplus")
    if beta <= 0:
        raise ValueError(f"actlib.softplus: beta must be positive, got {beta}")
    return SoftplusFunction.apply(input, float(beta), float(threshold))


def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""SiLU / Swish :math:`x\,\sigma(x)`.

    Derivative :math:`\sigma(x)\,(1 + x(1 - \sigma(x)))`; the function's minimum is ≈ −0.278
    at x ≈ −1.278. ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "silu")
    return _maybe_in_place(input, inplace, "silu", SiLUFunction)


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    r"""Gaussian error linear unit :math:`x\,\Phi(x)`, Φ the standard normal CDF.

    Derivative :math:`\Phi(x) + x\,\varphi(x)`. ``approximate='tanh'`` uses
    :math:`\tfrac12 x\,(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715 x^3)))`.
    """
    check_floating(input, "gelu")
    if approximate not in ("none", "tanh"):
        raise ValueError(f"actlib.gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELUFunction.apply(input, approximate)


def quick_gelu(input: torch.Tensor) -> torch.Tensor:
    r"""QuickGELU :math:`x\,\sigma(1.702\,x)`, the GELU approximation CLIP's checkpoints use.

    Derivative :math:`\sigma(kx)\,(1 + kx\,(1 - \sigma(kx)))` with k = 1.702.
    """
    check_floating(input, "quick_gelu")
    return QuickGELUFunction.apply(input)


def mish(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""Mish :math:`x \tanh(\operatorname{softplus}(x))`.

    Derivative :math:`\tanh(s) + x\,\sigma(x)\,(1 - \tanh^2 s)` with s = softplus(x).
    ``inplace=True`` overwrites ``input``.
    """
    check_floating(input, "mish")
    return _maybe_in_place(input, inplace, "mish", MishFunction)


# torch.fx.symbolic_trace keeps each functional as one call in the graph instead of tracing
# into its argument checks (which need real tensors, not fx Proxies). Modules call them
# through the module (``elementwise.relu``), where the tracer's patch takes effect.
for _name in (
    "sigmoid", "tanh", "softsign", "relu", "squared_relu", "leaky_relu", "rrelu", "prelu",
    "elu", "celu", "selu", "softplus", "silu", "gelu", "quick_gelu", "mish",
):  # fmt: skip
    torch.fx.wrap(_name)
