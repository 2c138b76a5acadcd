r"""One record per activation: the single source for the tests and the book.

The reference tests are parametrised over :data:`CATALOG`, the book's comparison table
is generated from it, and a test checks that every record has a chapter in ``_toc.yml``.
Adding an activation means one Function plus one record here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import elementwise as E
from . import gated as G
from . import hard as H
from . import modules as M
from .maxout import maxout
from .softmax import argmax, log_softmax, softmax


@dataclass(frozen=True)
class Activation:
    """What the course states about one activation, and where its code lives.

    ``kind`` says how it is called: ``"elementwise"`` (``f(x, **kwargs)``, same shape),
    ``"parametric"`` (``f(x, weight)``), ``"dim"`` (along ``dim``, same shape),
    ``"gated"`` (halves along ``dim``, half the size),
    ``"index"`` (integer output) or ``"maxout"`` (shrinks ``dim``). ``examples`` are the
    keyword arguments the tests and the book exercise; for ``"parametric"`` the
    ``weight`` is given as a float and becomes a one-element tensor.
    """

    name: str
    title: str
    formula: str
    derivative: str
    output_range: str
    zero_centred: bool
    monotonic: bool
    smooth: bool  # infinitely differentiable everywhere
    saturating: str  # "both", "negative", "none" or "everywhere" (zero gradient)
    functional: Callable
    module: type[nn.Module]
    reference: Callable
    chapter: str
    citation: str
    kind: str = "elementwise"
    examples: tuple[dict, ...] = field(default_factory=lambda: ({},))

    def make_module(self, **kwargs) -> nn.Module:
        """The ``nn.Module`` with this record's first example arguments (overridable)."""
        arguments = {**self.examples[0], **kwargs}
        if self.kind == "parametric":
            arguments.pop("weight", None)
        return self.module(**arguments)


def maxout_reference(input: torch.Tensor, num_pieces: int, dim: int = -1) -> torch.Tensor:
    """Maxout by reshape + amax, the independent form the tests compare against."""
    dim = dim % input.dim()
    shape = [*input.shape[:dim], input.shape[dim] // num_pieces, num_pieces]
    return input.reshape(*shape, *input.shape[dim + 1 :]).amax(dim + 1)


def _halves(input: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return input.chunk(2, dim)


def reglu_reference(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """relu(a) ⊗ b composed from torch ops, the reference for :func:`actlib.reglu`."""
    a, b = _halves(input, dim)
    return F.relu(a) * b


def geglu_reference(input: torch.Tensor, dim: int = -1, approximate: str = "none") -> torch.Tensor:
    """gelu(a) ⊗ b composed from torch ops, the reference for :func:`actlib.geglu`."""
    a, b = _halves(input, dim)
    return F.gelu(a, approximate=approximate) * b


def swiglu_reference(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """silu(a) ⊗ b composed from torch ops, the reference for :func:`actlib.swiglu`."""
    a, b = _halves(input, dim)
    return F.silu(a) * b


def squared_relu_reference(input: torch.Tensor) -> torch.Tensor:
    """relu(x)² composed from torch ops (torch has no functional for it)."""
    return F.relu(input).square()


def quick_gelu_reference(input: torch.Tensor) -> torch.Tensor:
    """x σ(1.702 x) composed from torch ops, the form of CLIP's ``QuickGELU``."""
    return input * torch.sigmoid(1.702 * input)


_RECORDS = (
    Activation(
        name="sigmoid",
        title="Sigmoid",
        formula=r"\sigma(x) = \frac{1}{1 + e^{-x}}",
        derivative=r"\sigma'(x) = \sigma(x)\,\bigl(1 - \sigma(x)\bigr)",
        output_range=r"(0, 1)",
        zero_centred=False,
        monotonic=True,
        smooth=True,
        saturating="both",
        functional=E.sigmoid,
        module=M.Sigmoid,
        reference=torch.sigmoid,
        chapter="book/squashing/sigmoid",
        citation="cybenko1989",
    ),
    Activation(
        name="tanh",
        title="Tanh",
        formula=r"\tanh x = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}",
        derivative=r"\tanh' x = 1 - \tanh^2 x",
        output_range=r"(-1, 1)",
        zero_centred=True,
        monotonic=True,
        smooth=True,
        saturating="both",
        functional=E.tanh,
        module=M.Tanh,
        reference=torch.tanh,
        chapter="book/squashing/tanh",
        citation="lecun1998",
    ),
    Activation(
        name="softsign",
        title="Softsign",
        formula=r"\operatorname{softsign}(x) = \frac{x}{1 + |x|}",
        derivative=r"\operatorname{softsign}'(x) = \frac{1}{(1 + |x|)^2}",
        output_range=r"(-1, 1)",
        zero_centred=True,
        monotonic=True,
        smooth=False,
        saturating="both",
        functional=E.softsign,
        module=M.Softsign,
        reference=F.softsign,
        chapter="book/squashing/softsign",
        citation="elliott1993",
    ),
    Activation(
        name="relu",
        title="ReLU",
        formula=r"\operatorname{relu}(x) = \max(x, 0)",
        derivative=r"\operatorname{relu}'(x) = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}",
        output_range=r"[0, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="negative",
        functional=E.relu,
        module=M.ReLU,
        reference=F.relu,
        chapter="book/rectifiers/relu",
        citation="nair2010",
    ),
    Activation(
        name="squared_relu",
        title="Squared ReLU",
        formula=r"\operatorname{relu}^2(x) = \max(x, 0)^2",
        derivative=r"(\operatorname{relu}^2)'(x) = 2\max(x, 0)",
        output_range=r"[0, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="negative",
        functional=E.squared_relu,
        module=M.SquaredReLU,
        reference=squared_relu_reference,
        chapter="book/rectifiers/relu",
        citation="so2021",
    ),
    Activation(
        name="leaky_relu",
        title="Leaky ReLU",
        formula=r"\operatorname{leaky}(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}",
        derivative=r"\operatorname{leaky}'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}",
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="none",
        functional=E.leaky_relu,
        module=M.LeakyReLU,
        reference=F.leaky_relu,
        chapter="book/rectifiers/leaky_relu",
        citation="maas2013",
        examples=({}, {"negative_slope": 0.2}),
    ),
    Activation(
        name="prelu",
        title="Parametric ReLU",
        formula=r"\operatorname{prelu}(x) = \begin{cases} x & x > 0 \\ a_c x & x \le 0 \end{cases}",
        derivative=(
            r"\frac{\partial}{\partial x} = \begin{cases} 1 & x > 0 \\ a_c & x \le 0 \end{cases},"
            r"\quad \frac{\partial}{\partial a_c} = \begin{cases} 0 & x > 0 \\ x & x \le 0 \end{cases}"
        ),
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="none",
        functional=E.prelu,
        module=M.PReLU,
        reference=F.prelu,
        chapter="book/rectifiers/leaky_relu",
        citation="he2015",
        kind="parametric",
        examples=({"weight": 0.25}, {"weight": -0.5}),
    ),
    Activation(
        name="rrelu",
        title="Randomized leaky ReLU",
        formula=(
            r"\operatorname{rrelu}(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases},"
            r"\quad a \sim U(l, u) \text{ in training, } \tfrac{l + u}{2} \text{ in eval}"
        ),
        derivative=r"\operatorname{rrelu}'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}",
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="none",
        functional=E.rrelu,
        module=M.RReLU,
        reference=F.rrelu,
        chapter="book/rectifiers/leaky_relu",
        citation="xu2015",
        examples=({}, {"lower": 0.1, "upper": 0.3}),
    ),
    Activation(
        name="elu",
        title="ELU",
        formula=r"\operatorname{elu}(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}",
        derivative=r"\operatorname{elu}'(x) = \begin{cases} 1 & x > 0 \\ \alpha e^{x} & x \le 0 \end{cases}",
        output_range=r"(-\alpha, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="negative",
        functional=E.elu,
        module=M.ELU,
        reference=F.elu,
        chapter="book/rectifiers/elu",
        citation="clevert2015",
        examples=({}, {"alpha": 0.5}),
    ),
    Activation(
        name="celu",
        title="CELU",
        formula=(
            r"\operatorname{celu}(x) = \max(x, 0) + \min\bigl(0, \alpha (e^{x/\alpha} - 1)\bigr)"
        ),
        derivative=r"\operatorname{celu}'(x) = \begin{cases} 1 & x > 0 \\ e^{x/\alpha} & x \le 0 \end{cases}",
        output_range=r"(-\alpha, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,  # C¹ for every α, not C²
        saturating="negative",
        functional=E.celu,
        module=M.CELU,
        reference=F.celu,
        chapter="book/rectifiers/elu",
        citation="barron2017",
        examples=({}, {"alpha": 0.5}, {"alpha": 2.0}),
    ),
    Activation(
        name="selu",
        title="SELU",
        formula=(
            r"\operatorname{selu}(x) = \lambda \begin{cases} x & x > 0 \\ "
            r"\alpha (e^{x} - 1) & x \le 0 \end{cases}"
        ),
        derivative=(
            r"\operatorname{selu}'(x) = \lambda \begin{cases} 1 & x > 0 \\ "
            r"\alpha e^{x} & x \le 0 \end{cases}"
        ),
        output_range=r"(-\lambda\alpha, \infty)",
        zero_centred=True,  # zero mean for standard-normal inputs, by construction
        monotonic=True,
        smooth=False,
        saturating="negative",
        functional=E.selu,
        module=M.SELU,
        reference=F.selu,
        chapter="book/rectifiers/selu",
        citation="klambauer2017",
    ),
    Activation(
        name="maxout",
        title="Maxout",
        formula=r"\operatorname{maxout}(x)_g = \max_{0 \le j < k} x_{gk + j}",
        derivative=(
            r"\frac{\partial\, \operatorname{maxout}(x)_g}{\partial x_i} = "
            r"\begin{cases} 1 & i = \arg\max_{j} x_{gk + j} \\ 0 & \text{otherwise} \end{cases}"
        ),
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="none",
        functional=maxout,
        module=M.Maxout,
        reference=maxout_reference,
        chapter="book/rectifiers/maxout",
        citation="goodfellow2013",
        kind="maxout",
        examples=({"num_pieces": 2}, {"num_pieces": 3, "dim": 0}),
    ),
    Activation(
        name="softplus",
        title="Softplus",
        formula=r"\operatorname{softplus}(x) = \frac{1}{\beta} \log\bigl(1 + e^{\beta x}\bigr)",
        derivative=r"\operatorname{softplus}'(x) = \sigma(\beta x)",
        output_range=r"(0, \infty)",
        zero_centred=False,
        monotonic=True,
        smooth=True,
        saturating="negative",
        functional=E.softplus,
        module=M.Softplus,
        reference=F.softplus,
        chapter="book/smooth/softplus",
        citation="dugas2001",
        examples=({}, {"beta": 2.0}, {"beta": 0.5, "threshold": 5.0}),
    ),
    Activation(
        name="silu",
        title="SiLU / Swish",
        formula=r"\operatorname{silu}(x) = x\,\sigma(x)",
        derivative=r"\operatorname{silu}'(x) = \sigma(x)\bigl(1 + x\,(1 - \sigma(x))\bigr)",
        output_range=r"[\approx -0.278, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="negative",
        functional=E.silu,
        module=M.SiLU,
        reference=F.silu,
        chapter="book/smooth/silu",
        citation="elfwing2018",
    ),
    Activation(
        name="gelu",
        title="GELU",
        formula=r"\operatorname{gelu}(x) = x\,\Phi(x)",
        derivative=r"\operatorname{gelu}'(x) = \Phi(x) + x\,\varphi(x)",
        output_range=r"[\approx -0.170, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="negative",
        functional=E.gelu,
        module=M.GELU,
        reference=F.gelu,
        chapter="book/smooth/gelu",
        citation="hendrycks2016",
        examples=({}, {"approximate": "tanh"}),
    ),
    Activation(
        name="quick_gelu",
        title="QuickGELU",
        formula=r"\operatorname{quick\_gelu}(x) = x\,\sigma(1.702\,x)",
        derivative=(
            r"\operatorname{quick\_gelu}'(x) = \sigma(kx)\bigl(1 + kx\,(1 - \sigma(kx))\bigr),"
            r"\quad k = 1.702"
        ),
        output_range=r"[\approx -0.164, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="negative",
        functional=E.quick_gelu,
        module=M.QuickGELU,
        reference=quick_gelu_reference,
        chapter="book/smooth/gelu",
        citation="radford2021",
    ),
    Activation(
        name="mish",
        title="Mish",
        formula=r"\operatorname{mish}(x) = x \tanh\bigl(\operatorname{softplus}(x)\bigr)",
        derivative=(
            r"\operatorname{mish}'(x) = \tanh s + x\,\sigma(x)\,(1 - \tanh^2 s),"
            r"\quad s = \operatorname{softplus}(x)"
        ),
        output_range=r"[\approx -0.309, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="negative",
        functional=E.mish,
        module=M.Mish,
        reference=F.mish,
        chapter="book/smooth/mish",
        citation="misra2019",
    ),
    Activation(
        name="glu",
        title="GLU",
        formula=r"\operatorname{glu}([a, b]) = a \otimes \sigma(b)",
        derivative=(
            r"\frac{\partial y}{\partial a} = \sigma(b),"
            r"\quad \frac{\partial y}{\partial b} = a\,\sigma(b)\,(1 - \sigma(b))"
        ),
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="none",
        functional=G.glu,
        module=M.GLU,
        reference=F.glu,
        chapter="book/modern/gated_linear_units",
        citation="dauphin2017",
        kind="gated",
        examples=({"dim": -1}, {"dim": 1}),
    ),
    Activation(
        name="reglu",
        title="ReGLU",
        formula=r"\operatorname{reglu}([a, b]) = \operatorname{relu}(a) \otimes b",
        derivative=(
            r"\frac{\partial y}{\partial a} = \operatorname{relu}'(a)\, b,"
            r"\quad \frac{\partial y}{\partial b} = \operatorname{relu}(a)"
        ),
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=False,
        saturating="none",
        functional=G.reglu,
        module=M.ReGLU,
        reference=reglu_reference,
        chapter="book/modern/gated_linear_units",
        citation="shazeer2020",
        kind="gated",
        examples=({"dim": -1}, {"dim": 1}),
    ),
    Activation(
        name="geglu",
        title="GEGLU",
        formula=r"\operatorname{geglu}([a, b]) = \operatorname{gelu}(a) \otimes b",
        derivative=(
            r"\frac{\partial y}{\partial a} = \operatorname{gelu}'(a)\, b,"
            r"\quad \frac{\partial y}{\partial b} = \operatorname{gelu}(a)"
        ),
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="none",
        functional=G.geglu,
        module=M.GEGLU,
        reference=geglu_reference,
        chapter="book/modern/gated_linear_units",
        citation="shazeer2020",
        kind="gated",
        examples=({"dim": -1}, {"dim": 1, "approximate": "tanh"}),
    ),
    Activation(
        name="swiglu",
        title="SwiGLU",
        formula=r"\operatorname{swiglu}([a, b]) = \operatorname{silu}(a) \otimes b",
        derivative=(
            r"\frac{\partial y}{\partial a} = \operatorname{silu}'(a)\, b,"
            r"\quad \frac{\partial y}{\partial b} = \operatorname{silu}(a)"
        ),
        output_range=r"(-\infty, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=True,
        saturating="none",
        functional=G.swiglu,
        module=M.SwiGLU,
        reference=swiglu_reference,
        chapter="book/modern/gated_linear_units",
        citation="shazeer2020",
        kind="gated",
        examples=({"dim": -1}, {"dim": 1}),
    ),
    Activation(
        name="relu6",
        title="ReLU6",
        formula=r"\operatorname{relu6}(x) = \min(\max(x, 0), 6)",
        derivative=r"\operatorname{relu6}'(x) = \begin{cases} 1 & 0 < x < 6 \\ 0 & \text{otherwise} \end{cases}",
        output_range=r"[0, 6]",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="both",
        functional=H.relu6,
        module=M.ReLU6,
        reference=F.relu6,
        chapter="book/modern/hard_activations",
        citation="sandler2018",
    ),
    Activation(
        name="hardtanh",
        title="Hardtanh",
        formula=r"\operatorname{hardtanh}(x) = \min(\max(x, l), u)",
        derivative=r"\operatorname{hardtanh}'(x) = \begin{cases} 1 & l < x < u \\ 0 & \text{otherwise} \end{cases}",
        output_range=r"[l, u],\ \text{default } [-1, 1]",
        zero_centred=True,  # for the default bounds [-1, 1]
        monotonic=True,
        smooth=False,
        saturating="both",
        functional=H.hardtanh,
        module=M.Hardtanh,
        reference=F.hardtanh,
        chapter="book/modern/hard_activations",
        citation="collobert2004",
        examples=({}, {"min_val": -2.0, "max_val": 0.5}),
    ),
    Activation(
        name="hardsigmoid",
        title="Hardsigmoid",
        formula=r"\operatorname{hardsigmoid}(x) = \operatorname{relu6}(x + 3) / 6",
        derivative=(
            r"\operatorname{hardsigmoid}'(x) = \begin{cases} 1/6 & -3 < x < 3 \\ "
            r"0 & \text{otherwise} \end{cases}"
        ),
        output_range=r"[0, 1]",
        zero_centred=False,
        monotonic=True,
        smooth=False,
        saturating="both",
        functional=H.hardsigmoid,
        module=M.Hardsigmoid,
        reference=F.hardsigmoid,
        chapter="book/modern/hard_activations",
        citation="howard2019",
    ),
    Activation(
        name="hardswish",
        title="Hardswish",
        formula=r"\operatorname{hardswish}(x) = x\,\operatorname{relu6}(x + 3) / 6",
        derivative=(
            r"\operatorname{hardswish}'(x) = \begin{cases} 0 & x \le -3 \\ "
            r"x/3 + 1/2 & -3 < x < 3 \\ 1 & x \ge 3 \end{cases}"
        ),
        output_range=r"[-0.375, \infty)",
        zero_centred=False,
        monotonic=False,
        smooth=False,
        saturating="negative",
        functional=H.hardswish,
        module=M.Hardswish,
        reference=F.hardswish,
        chapter="book/modern/hard_activations",
        citation="howard2019",
    ),
    Activation(
        name="softmax",
        title="Softmax",
        formula=r"\operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}",
        derivative=r"\frac{\partial y_i}{\partial x_j} = y_i\,(\delta_{ij} - y_j)",
        output_range=r"(0, 1),\ \textstyle\sum_i y_i = 1",
        zero_centred=False,
        monotonic=True,
        smooth=True,
        saturating="both",
        functional=softmax,
        module=M.Softmax,
        reference=F.softmax,
        chapter="book/output/softmax",
        citation="bridle1990",
        kind="dim",
        examples=({"dim": -1}, {"dim": 0}),
    ),
    Activation(
        name="log_softmax",
        title="Log-softmax",
        formula=r"\operatorname{log\_softmax}(x)_i = x_i - \log \sum_j e^{x_j}",
        derivative=r"\frac{\partial y_i}{\partial x_j} = \delta_{ij} - \operatorname{softmax}(x)_j",
        output_range=r"(-\infty, 0)",
        zero_centred=False,
        monotonic=True,
        smooth=True,
        saturating="none",
        functional=log_softmax,
        module=M.LogSoftmax,
        reference=F.log_softmax,
        chapter="book/output/softmax",
        citation="bridle1990",
        kind="dim",
        examples=({"dim": -1}, {"dim": 0}),
    ),
    Activation(
        name="argmax",
        title="Argmax",
        formula=r"\operatorname{argmax}(x) = \arg\max_i x_i",
        derivative=r"\frac{\partial \operatorname{argmax}(x)}{\partial x_j} = 0 \text{ (almost everywhere)}",
        output_range=r"\{0, \dots, n - 1\}",
        zero_centred=False,
        monotonic=False,
        smooth=False,
        saturating="everywhere",
        functional=argmax,
        module=M.Argmax,
        reference=torch.argmax,
        chapter="book/output/argmax",
        citation="goodfellow2016",
        kind="index",
        examples=({"dim": -1}, {"dim": 0, "keepdim": True}, {}),
    ),
)

CATALOG: dict[str, Activation] = {record.name: record for record in _RECORDS}
"""Every activation of the course, by name, in the book's order."""
