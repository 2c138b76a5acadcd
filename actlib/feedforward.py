r"""Transformer feed-forward blocks: the two-matrix FFN and the gated one (Shazeer 2020).

* :class:`FeedForward`: :math:`W_2\, f(W_1 x)`, hidden size 4·d_model by default
  (Vaswani et al. 2017), parameters 2·d_model·hidden (+ biases).
* :class:`GatedFeedForward`: :math:`W_\text{down}\,\bigl(g(W_\text{gate} x) \odot W_\text{up} x\bigr)`,
  three matrices, parameters 3·d_model·hidden (+ biases).

At equal parameter count the gated block's hidden size is 2/3 of the FFN's: for a
4·d_model FFN, 3·d·h = 8·d² gives h = 8·d_model/3, which :func:`gated_hidden_size`
rounds as LLaMA does.
"""

import operator

import torch
from torch import nn

from . import elementwise as E
from . import gated as G
from .modules import _NotScriptable

# Looked up in actlib.elementwise at call time (not bound copies), so that
# torch.fx.symbolic_trace's patch of the functionals takes effect.
_FFN_ACTIVATIONS = ("relu", "gelu", "silu", "sigmoid", "tanh", "squared_relu")


def _check_size(value, what: str, name: str) -> int:
    """``value`` as an int (numpy integers too, as nn.Linear takes), or a clear error."""
    try:
        size = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        size = None
    if size is None or size < 1:
        raise ValueError(f"actlib.{name}: {what} must be a positive int, got {value!r}")
    return size


def gated_hidden_size(d_model: int, multiple_of: int = 1) -> int:
    """The hidden size at which a gated FFN has a 4·d_model two-matrix FFN's weights.

    ``(8 · d_model) // 3`` — LLaMA's ``int(2 · 4·d_model / 3)`` — then rounded up to a
    multiple of ``multiple_of`` (LLaMA uses 256; the default 1 leaves it). Without the
    rounding up, the gated block has 3·d·h ≤ 8·d² weights, fewer by less than 3·d_model
    (exactly equal when d_model is a multiple of 3).
    """
    d_model = _check_size(d_model, "d_model", "gated_hidden_size")
    multiple_of = _check_size(multiple_of, "multiple_of", "gated_hidden_size")
    hidden = (8 * d_model) // 3
    return multiple_of * -(-hidden // multiple_of)


class FeedForward(_NotScriptable):
    r"""The two-matrix feed-forward block :math:`W_2\, f(W_1 x)`.

    ``activation`` names an actlib activation: ``"relu"``, ``"gelu"``, ``"silu"``,
    ``"sigmoid"``, ``"tanh"`` or ``"squared_relu"``. ``hidden`` defaults to 4·``d_model``.
    Shape: (…, d_model) → (…, d_model).
    """

    def __init__(self, d_model: int, hidden: int | None = None, activation: str = "relu",
                 bias: bool = False, device=None, dtype=None):  # fmt: skip
        super().__init__()
        d_model = _check_size(d_model, "d_model", "FeedForward")
        hidden = _check_size(4 * d_model if hidden is None else hidden, "hidden", "FeedForward")
        if activation not in _FFN_ACTIVATIONS:
            raise ValueError(
                f"actlib.FeedForward: activation must be one of {sorted(_FFN_ACTIVATIONS)}, "
                f"got {activation!r}"
            )
        self.activation = activation
        self.up = nn.Linear(d_model, hidden, bias=bias, device=device, dtype=dtype)
        self.down = nn.Linear(hidden, d_model, bias=bias, device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.down(getattr(E, self.activation)(self.up(input)))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


class GatedFeedForward(_NotScriptable):
    r"""The gated feed-forward block :math:`W_\text{down}\,\bigl(g(W_\text{gate} x) \odot W_\text{up} x\bigr)`.

    ``activation`` g = ``"sigmoid"``, ``"relu"``, ``"gelu"`` or ``"silu"`` gives GLU,
    ReGLU, GEGLU or SwiGLU (Shazeer 2020). ``hidden`` defaults to
    :func:`gated_hidden_size` (``(8·d_model) // 3``), so the block has as many weights
    as a :class:`FeedForward` of hidden size 4·d_model, to within 3·d_model.
    W_gate and W_up are stored as one ``gate_and_up`` Linear (the first ``hidden``
    outputs are W_gate x), so both come from one matrix product, and the halves go to
    :func:`actlib.gated`. Shape: (…, d_model) → (…, d_model).
    """

    def __init__(self, d_model: int, hidden: int | None = None, activation: str = "silu",
                 bias: bool = False, device=None, dtype=None):  # fmt: skip
        super().__init__()
        d_model = _check_size(d_model, "d_model", "GatedFeedForward")
        hidden = gated_hidden_size(d_model) if hidden is None else hidden
        hidden = _check_size(hidden, "hidden", "GatedFeedForward")
        if activation not in G.GATES:
            raise ValueError(
                f"actlib.GatedFeedForward: activation must be one of {sorted(G.GATES)}, "
                f"got {activation!r}"
            )
        self.activation = activation
        self.gate_and_up = nn.Linear(d_model, 2 * hidden, bias=bias, device=device, dtype=dtype)
        self.down = nn.Linear(hidden, d_model, bias=bias, device=device, dtype=dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.down(G.gated(self.gate_and_up(input), self.activation))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
