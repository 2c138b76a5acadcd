"""``nn.Module`` forms of the activations, named and parametrised as in ``torch.nn``."""

import torch
from torch import nn

from . import elementwise as E
from .maxout import maxout
from .softmax import argmax, log_softmax, softmax


class _Stateless(nn.Module):
    """A module that applies a functional with no arguments beyond the input."""

    function = staticmethod(lambda input: input)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.function(input)


class Sigmoid(_Stateless):
    """Applies :func:`actlib.sigmoid` element-wise. Shape: any, output same shape."""

    function = staticmethod(E.sigmoid)


class Tanh(_Stateless):
    """Applies :func:`actlib.tanh` element-wise. Shape: any, output same shape."""

    function = staticmethod(E.tanh)


class Softsign(_Stateless):
    """Applies :func:`actlib.softsign` element-wise. Shape: any, output same shape."""

    function = staticmethod(E.softsign)


class ReLU(_Stateless):
    """Applies :func:`actlib.relu` element-wise. Shape: any, output same shape."""

    function = staticmethod(E.relu)


class SiLU(_Stateless):
    """Applies :func:`actlib.silu` (Swish) element-wise. Shape: any, output same shape."""

    function = staticmethod(E.silu)


class SELU(_Stateless):
    """Applies :func:`actlib.selu` element-wise. Shape: any, output same shape."""

    function = staticmethod(E.selu)


class Mish(_Stateless):
    """Applies :func:`actlib.mish` element-wise. Shape: any, output same shape."""

    function = staticmethod(E.mish)


class LeakyReLU(nn.Module):
    """Applies :func:`actlib.leaky_relu` with a fixed ``negative_slope`` (default 0.01)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(nn.Module):
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


class ELU(nn.Module):
    """Applies :func:`actlib.elu` with saturation value ``-alpha`` (default 1)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(nn.Module):
    """Applies :func:`actlib.softplus` with sharpness ``beta`` and linear ``threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class GELU(nn.Module):
    """Applies :func:`actlib.gelu`, exact (``approximate='none'``) or its tanh approximation."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return E.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Maxout(nn.Module):
    """Applies :func:`actlib.maxout`: the maximum over groups of ``num_pieces`` features.

    Shape: (…, k·m, …) along ``dim`` → (…, m, …). Put it after an ``nn.Linear`` with
    k times as many outputs as the maxout layer should have.
    """

    def __init__(self, num_pieces: int, dim: int = -1):
        super().__init__()
        self.num_pieces, self.dim = num_pieces, dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return maxout(input, self.num_pieces, self.dim)

    def extra_repr(self) -> str:
        return f"num_pieces={self.num_pieces}, dim={self.dim}"


class Softmax(nn.Module):
    """Applies :func:`actlib.softmax` along ``dim`` (which must be given)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Applies :func:`actlib.log_softmax` along ``dim`` (which must be given)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return log_softmax(input, self.dim)


class Argmax(nn.Module):
    """Applies :func:`actlib.argmax`: index of the largest entry along ``dim``."""

    def __init__(self, dim: int | None = None, keepdim: bool = False):
        super().__init__()
        self.dim, self.keepdim = dim, keepdim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return argmax(input, self.dim, self.keepdim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, keepdim={self.keepdim}"
