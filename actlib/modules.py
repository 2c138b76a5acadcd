"""``nn.Module`` forms of the activations, named and parametrised as in ``torch.nn``."""

import importlib

import torch
from torch import nn

# Functionals are looked up through their modules at call time (``E.relu``, not a bound
# copy), so that torch.fx.symbolic_trace's patch of them takes effect. (``actlib.maxout``
# is the function once the package is imported, hence import_module for its module.)
from . import elementwise as E
from . import gated as G
from . import hard as H
from . import softmax as S

maxout_module = importlib.import_module(f"{__package__}.maxout")


class _NotScriptable(nn.Module):
    """A module built on actlib's Functions: TorchScript cannot compile a Python
    ``torch.autograd.Function``, so scripting is refused up front with a message naming
    the supported paths."""

    def __prepare_scriptable__(self):
        raise RuntimeError(
            f"actlib.{type(self).__name__} cannot be scripted with torch.jit.script: actlib's "
            "activations are Python torch.autograd.Functions, which TorchScript cannot "
            "compile. Use torch.compile, or torch.export to save a model."
        )


class _Activation(_NotScriptable):
    """Base of actlib's activation modules (what the training monitor looks for)."""


class _InPlace(_Activation):
    """An activation with torch's ``inplace`` flag (overwrite the input with the output)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(_Activation):
    """Applies :func:`actlib.sigmoid` element-wise. Shape: any, output same shape."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.sigmoid(input)


class Tanh(_Activation):
    """Applies :func:`actlib.tanh` element-wise. Shape: any, output same shape."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.tanh(input)


class Softsign(_Activation):
    """Applies :func:`actlib.softsign` element-wise. Shape: any, output same shape."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.softsign(input)


class ReLU(_InPlace):
    """Applies :func:`actlib.relu` element-wise (``inplace=True`` overwrites the input)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.relu(input, inplace=self.inplace)


class SiLU(_InPlace):
    """Applies :func:`actlib.silu` (Swish) element-wise (``inplace=True`` overwrites the input)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.silu(input, inplace=self.inplace)


class SELU(_InPlace):
    """Applies :func:`actlib.selu` element-wise (``inplace=True`` overwrites the input)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.selu(input, inplace=self.inplace)


class Mish(_InPlace):
    """Applies :func:`actlib.mish` element-wise (``inplace=True`` overwrites the input)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.mish(input, inplace=self.inplace)


class SquaredReLU(_Activation):
    """Applies :func:`actlib.squared_relu` element-wise. Shape: any, output same shape."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.squared_relu(input)


class QuickGELU(_Activation):
    """Applies :func:`actlib.quick_gelu`, x σ(1.702 x), element-wise."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.quick_gelu(input)


class Hardtanh(_Activation):
    """Applies :func:`actlib.hardtanh`: clamps to [``min_val``, ``max_val``] (default [−1, 1])."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(
                f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})"
            )
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return H.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        inplace = ", inplace=True" if self.inplace else ""
        return f"min_val={self.min_val}, max_val={self.max_val}{inplace}"


class ReLU6(Hardtanh):
    """Applies :func:`actlib.relu6`, the Hardtanh with bounds 0 and 6, as ``torch.nn.ReLU6``."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return H.relu6(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class _InPlaceUnprinted(_InPlace):
    """As torch.nn.Hardsigmoid and Hardswish: the ``inplace`` flag is not in the repr."""

    def extra_repr(self) -> str:
        return ""


class Hardsigmoid(_InPlaceUnprinted):
    """Applies :func:`actlib.hardsigmoid` element-wise (``inplace=True`` overwrites the input)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return H.hardsigmoid(input, inplace=self.inplace)


class Hardswish(_InPlaceUnprinted):
    """Applies :func:`actlib.hardswish` element-wise (``inplace=True`` overwrites the input)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return H.hardswish(input, inplace=self.inplace)


class LeakyReLU(_Activation):
    """Applies :func:`actlib.leaky_relu` with a fixed ``negative_slope`` (default 0.01)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        inplace = ", inplace=True" if self.inplace else ""
        return f"negative_slope={self.negative_slope}{inplace}"


class RReLU(_Activation):
    """Applies :func:`actlib.rrelu`: random slopes in [``lower``, ``upper``] in training mode,
    their mean in eval mode, as ``torch.nn.RReLU``."""

    def __init__(
        self, lower: float = E.RRELU_LOWER, upper: float = E.RRELU_UPPER, inplace: bool = False
    ):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        inplace = ", inplace=True" if self.inplace else ""
        return f"lower={self.lower}, upper={self.upper}{inplace}"


class PReLU(_Activation):
    """Applies :func:`actlib.prelu` with a learnable slope: one shared, or one per channel.

    ``num_parameters`` is 1 or the number of channels (dim 1 of the input); every slope
    starts at ``init`` (default 0.25, as in He et al. 2015 and ``torch.nn.PReLU``).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be >= 1, got {num_parameters}")
        self.num_parameters = num_parameters
        self.weight = nn.Parameter(torch.full((num_parameters,), init, device=device, dtype=dtype))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(_Activation):
    """Applies :func:`actlib.elu` with saturation value ``-alpha`` (default 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        inplace = ", inplace=True" if self.inplace else ""
        return f"alpha={self.alpha}{inplace}"


class CELU(ELU):
    """Applies :func:`actlib.celu` with saturation value ``-alpha`` (default 1)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.celu(input, self.alpha, self.inplace)


class Softplus(_Activation):
    """Applies :func:`actlib.softplus` with sharpness ``beta`` and linear ``threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class GELU(_Activation):
    """Applies :func:`actlib.gelu`, exact (``approximate='none'``) or its tanh approximation."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Maxout(_Activation):
    """Applies :func:`actlib.maxout`: the maximum over groups of ``num_pieces`` features.

    Shape: (…, k·m, …) along ``dim`` → (…, m, …). Put it after an ``nn.Linear`` with
    k times as many outputs as the maxout layer should have.
    """

    def __init__(self, num_pieces: int, dim: int = -1):
        super().__init__()
        self.num_pieces, self.dim = num_pieces, dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return maxout_module.maxout(input, self.num_pieces, self.dim)

    def extra_repr(self) -> str:
        return f"num_pieces={self.num_pieces}, dim={self.dim}"


class GLU(_Activation):
    """Applies :func:`actlib.glu` along ``dim``: a ⊗ σ(b). Shape: (…, 2m, …) → (…, m, …)."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return G.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ReGLU(GLU):
    """Applies :func:`actlib.reglu` along ``dim``: relu(a) ⊗ b."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return G.reglu(input, self.dim)


class SwiGLU(GLU):
    """Applies :func:`actlib.swiglu` along ``dim``: silu(a) ⊗ b."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return G.swiglu(input, self.dim)


class GEGLU(GLU):
    """Applies :func:`actlib.geglu` along ``dim``: gelu(a) ⊗ b, exact or tanh-approximated."""

    def __init__(self, dim: int = -1, approximate: str = "none"):
        super().__init__(dim)
        self.approximate = approximate

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return G.geglu(input, self.dim, self.approximate)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, approximate={self.approximate!r}"


class Softmax(_Activation):
    """Applies :func:`actlib.softmax` along ``dim`` (which must be given)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return S.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Applies :func:`actlib.log_softmax` along ``dim`` (which must be given)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return S.log_softmax(input, self.dim)


class Argmax(_Activation):
    """Applies :func:`actlib.argmax`: index of the largest entry along ``dim``."""

    def __init__(self, dim: int | None = None, keepdim: bool = False):
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return S.argmax(input, self.dim, self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"
