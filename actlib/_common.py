"""Plumbing shared by every Function: input checks and the half-precision "opmath" rule."""

import operator

import torch
from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

_HALF_TYPES = (torch.float16, torch.bfloat16)


def check_floating(input: torch.Tensor, name: str) -> None:
    """Raise a clear error unless ``input`` is a real floating-point tensor.

    Activations are defined on real numbers; an integer or bool tensor would either be
    silently promoted or fail deep inside a kernel, so we refuse it up front.
    """
    if not isinstance(input, torch.Tensor):
        if torch.overrides.is_tensor_like(input):
            return  # a tensor-like (``__torch_function__``) handles the Function call itself
        raise TypeError(f"actlib.{name} expects a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(
            f"actlib.{name} expects a floating-point tensor (float16, bfloat16, float32 or "
            f"float64), got dtype {input.dtype}; convert it first, e.g. x.float()"
        )


def check_bool(value, name: str) -> None:
    """A clear error unless ``value`` is a bool (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")


def check_int(value, name: str, minimum: int) -> None:
    """A clear error unless ``value`` is an int (not a bool or a float) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def check_feature_input(input, in_features: int) -> None:
    """The input of an output layer: a floating-point tensor whose last dimension is ``in_features``."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")
    if input.dim() == 0 or input.shape[-1] != in_features:
        raise ValueError(
            f"input must have in_features={in_features} as its last dimension, "
            f"got shape {tuple(input.shape)}"
        )


def opmath(tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` in the precision the arithmetic should run in.

    float16/bfloat16 are computed in float32 and cast back once at the end, as
    PyTorch's own kernels do: chaining half-precision ops would round at every step.
    """
    return tensor.float() if tensor.dtype in _HALF_TYPES else tensor


def normalize_dim(dim: int, ndim: int, name: str) -> int:
    """Map a possibly negative ``dim`` into ``range(ndim)``, with a clear IndexError.

    A 0-d tensor is treated as having one dimension, as PyTorch's reductions do.
    """
    if isinstance(dim, bool):
        raise TypeError(f"actlib.{name}: dim must be an int, got bool")
    try:
        dim = operator.index(dim)  # an int, or an integer like numpy's int64, as torch takes
    except TypeError:
        raise TypeError(f"actlib.{name}: dim must be an int, got {type(dim).__name__}") from None
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(
            f"actlib.{name}: dim {dim} is out of range for a tensor with {ndim} dimension(s) "
            f"(expected a value in [{-rank}, {rank - 1}])"
        )
    return dim % rank


class eager_only_jvp:  # noqa: N801 (used as a decorator, like staticmethod)
    """Decorator for a Function's ``jvp``: hidden while torch.compile or torch.export traces.

    Dynamo refuses to trace an ``autograd.Function`` that defines a custom ``jvp``. Seen
    from a compiler (``torch.compiler.is_compiling()``) this attribute is
    ``torch.autograd.Function``'s own, so the Function is traced through its forward and
    backward; eagerly it is the hand-derived jvp, so forward-mode AD (``torch.func.jvp``,
    ``jacfwd``, ``hessian``, ``forward_ad``) works. Put it above ``@staticmethod``.

    Forward over forward (``jacfwd(jacfwd(f))``, a ``jvp`` of a ``jvp``) is refused with
    a clear error: torch does not push the outer tangent through a custom Function's jvp,
    so the result would silently be 0 (a minimal Function with a jvp shows it too).
    ``torch.func.hessian`` (forward over reverse) and ``jacrev`` of anything are exact.
    """

    def __init__(self, jvp: staticmethod):
        self.jvp = jvp

    def __get__(self, instance, owner):
        if torch.compiler.is_compiling():
            return torch.autograd.Function.jvp
        jvp = self.jvp.__get__(instance, owner)

        def refusing_forward_over_forward(ctx, *tangents):
            _refuse_nested_forward_mode(owner.__name__)
            return jvp(ctx, *tangents)

        return refusing_forward_over_forward


def _refuse_nested_forward_mode(function: str) -> None:
    levels = [i for i in retrieve_all_functorch_interpreters() if "Jvp" in str(i.key())]
    if len(levels) > 1:
        raise RuntimeError(
            f"actlib: forward-mode AD of forward-mode AD (e.g. jacfwd(jacfwd(f))) through "
            f"{function} would silently give 0: torch does not propagate the outer tangent "
            "through a custom autograd.Function's jvp. Use torch.func.hessian (forward over "
            "reverse), jacfwd(jacrev(f)) or jacrev(jacrev(f)) instead."
        )
