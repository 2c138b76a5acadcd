r"""Gated linear units: one half of the input, activated, multiplies the other half.

The input is split into halves along ``dim``, :math:`x = [a, b]`, and

* ``glu``:    :math:`a \otimes \sigma(b)` (Dauphin et al. 2017; the order of ``F.glu``),
* ``reglu``:  :math:`\operatorname{relu}(a) \otimes b`,
* ``geglu``:  :math:`\operatorname{gelu}(a) \otimes b`,
* ``swiglu``: :math:`\operatorname{silu}(a) \otimes b` (Shazeer 2020's variants, act(xW) ⊗ xV).

Write :math:`y = g(u) \otimes v` with u the activated half and v the linear one. The
product rule gives

.. math:: \frac{\partial L}{\partial v} = \frac{\partial L}{\partial y} \otimes g(u), \qquad
          \frac{\partial L}{\partial u} = \frac{\partial L}{\partial y} \otimes v \otimes g'(u):

the gradient of the linear half is multiplied by the gate's *value*, not by a derivative,
so where the gate is open (g(u) near 1, or large for relu/gelu/silu) it passes undiminished,
however many layers it has gone through. That is Dauphin et al.'s argument for gates.

The backward saves the input only and recomputes g(u) and g'(u) with actlib's own
Functions, so second derivatives work.
"""

import torch

from ._common import check_floating, eager_only_jvp, normalize_dim, opmath
from .elementwise import GELUFunction, ReLUFunction, SigmoidFunction, SiLUFunction

_GATE_FUNCTIONS = {
    "sigmoid": SigmoidFunction,
    "relu": ReLUFunction,
    "gelu": GELUFunction,
    "silu": SiLUFunction,
}


def _gate_arguments(name: str, approximate: str) -> tuple:
    return (approximate,) if name == "gelu" else ()


def _gate_value(name: str, approximate: str, u: torch.Tensor) -> torch.Tensor:
    """g(u) for a gate ``name``, through actlib's Function (differentiable)."""
    return _GATE_FUNCTIONS[name].apply(u, *_gate_arguments(name, approximate))


def _times_gate_derivative(name: str, approximate: str, u: torch.Tensor, incoming) -> torch.Tensor:
    """``incoming ⊙ g'(u)``, with the kink and NaN conventions of the gate's own Function.

    For ReLU a select, not a product, as torch's ReLU backward: 0 where u ≤ 0 even where
    ``incoming`` is inf or NaN (an infinite linear half).
    """
    if name == "relu":
        return torch.where(u <= 0, 0, incoming)
    if name == "sigmoid":
        # σ′(u) = σ(u) σ(−u): from the saved input, accurate in both tails, where the
        # σ(1 − σ) of the output cancels for large u (and a large linear half amplifies it).
        return incoming * SigmoidFunction.apply(u) * SigmoidFunction.apply(-u)
    if name == "gelu":
        return incoming * GELUFunction.derivative(u, approximate)
    return incoming * SiLUFunction.derivative(u)


class GatedFunction(torch.autograd.Function):
    r"""y = g(u) ⊗ v for the halves of the input along ``dim``; saves the input.

    ``gate_first`` says which half is activated: the first for ReGLU/GEGLU/SwiGLU
    (u = a, v = b), the second for GLU (u = b, v = a).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, dim, gate, approximate, gate_first):
        u, v = GatedFunction._halves(opmath(input), dim, gate_first)
        value = _GATE_FUNCTIONS[gate].forward(u, *_gate_arguments(gate, approximate))
        return value.mul_(v).to(input.dtype)

    @staticmethod
    def _halves(x, dim, gate_first):
        first, second = x.chunk(2, dim)
        return (first, second) if gate_first else (second, first)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, ctx.dim, ctx.gate, ctx.approximate, ctx.gate_first = inputs
        ctx.save_for_backward(input)
        ctx.save_for_forward(input)

    @staticmethod
    def _saved_halves(ctx):
        (x,) = ctx.saved_tensors
        u, v = GatedFunction._halves(opmath(x), ctx.dim, ctx.gate_first)
        return u, v, _gate_value(ctx.gate, ctx.approximate, u), x.dtype

    @staticmethod
    def backward(ctx, grad_output):
        u, v, value, dtype = GatedFunction._saved_halves(ctx)
        g = opmath(grad_output)
        grad_u = _times_gate_derivative(ctx.gate, ctx.approximate, u, g * v)
        grad_v = g * value
        halves = (grad_u, grad_v) if ctx.gate_first else (grad_v, grad_u)
        return torch.cat(halves, ctx.dim).to(dtype), None, None, None, None

    @eager_only_jvp
    @staticmethod
    def jvp(ctx, tangent, *_):
        r"""ẏ = g'(u) v u̇ + g(u) v̇: the product rule, in the halves of the tangent."""
        u, v, value, dtype = GatedFunction._saved_halves(ctx)
        du, dv = GatedFunction._halves(opmath(tangent), ctx.dim, ctx.gate_first)
        return (_times_gate_derivative(ctx.gate, ctx.approximate, u, du * v) + value * dv).to(dtype)


def _gated(input, dim, name, gate, approximate="none", gate_first=True) -> torch.Tensor:
    check_floating(input, name)
    if input.dim() == 0:
        raise ValueError(f"actlib.{name} needs at least one dimension to split, got a 0-d tensor")
    dim = normalize_dim(dim, input.dim(), name)
    if input.shape[dim] % 2:
        raise ValueError(
            f"actlib.{name}: size {input.shape[dim]} of dim {dim} is odd; it must be even, "
            f"to split into the two halves"
        )
    return GatedFunction.apply(input, dim, gate, approximate, gate_first)


def glu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Gated linear unit :math:`a \otimes \sigma(b)`, a and b the halves of ``input`` along ``dim``.

    The same halves and order as ``torch.nn.functional.glu``: the second half gates the first.
    """
    return _gated(input, dim, "glu", "sigmoid", gate_first=False)


def reglu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""ReGLU :math:`\operatorname{relu}(a) \otimes b`, a and b the halves of ``input`` along ``dim``."""
    return _gated(input, dim, "reglu", "relu")


def geglu(input: torch.Tensor, dim: int = -1, approximate: str = "none") -> torch.Tensor:
    r"""GEGLU :math:`\operatorname{gelu}(a) \otimes b`; ``approximate='tanh'`` uses the tanh GELU."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"actlib.geglu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _gated(input, dim, "geglu", "gelu", approximate)


def swiglu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""SwiGLU :math:`\operatorname{silu}(a) \otimes b`, a and b the halves of ``input`` along ``dim``.

    The feed-forward gate of LLaMA, PaLM and Mistral.
    """
    return _gated(input, dim, "swiglu", "silu")


GATES = {"sigmoid": "glu", "relu": "reglu", "gelu": "geglu", "silu": "swiglu"}
"""The gated unit that each gate activation gives, as named by Shazeer 2020."""


def gated(input: torch.Tensor, activation: str, dim: int = -1) -> torch.Tensor:
    r""":math:`g(a) \otimes b` for ``activation`` g in :data:`GATES`: the first half is activated.

    With ``"sigmoid"`` this is Shazeer's GLU, σ(a) ⊗ b — the halves swapped against
    :func:`glu`, which follows ``F.glu``'s a ⊗ σ(b).
    """
    if activation not in GATES:
        raise ValueError(
            f"actlib.gated: activation must be one of {sorted(GATES)}, got {activation!r}"
        )
    return _gated(input, dim, "gated", activation)


for _name in ("glu", "reglu", "geglu", "swiglu", "gated"):
    torch.fx.wrap(_name)
