r"""The offline activation explorer of the HTML book: data computed by actlib, drawn by Plotly.

:func:`explorer` (the page "Activation explorer") and :func:`live_figure` (one figure in a
chapter) return an :class:`Explorer`. Displayed in a notebook it emits a ``<div>`` that
holds, as JSON, f and f′ of every chosen activation

* on a fixed grid of x (:data:`X_GRID`: steps of 1/8 on [−8, 8], 1/2 out to ±32 and 8 out
  to ±320, every point exactly representable in float16 and bfloat16, so the three dtypes
  see the same inputs),
* for every value on the grid of each parameter (:data:`PARAMETERS`: ELU's α, softplus's
  β and threshold, Swish's β, the hardtanh bounds, …),
* computed by actlib **in** float16 and bfloat16 (f′ by autograd through actlib's
  backward, with an incoming gradient of ones in that dtype), and for float32 computed in
  float64 and rounded once to float32 (actlib's float32 results differ from that by an ulp
  or two, and differently on each CPU instruction set, which a stored page must not),

and, per dtype, the grid points where the value *rounds* to 0, to ±1 or to ±inf: the value
in that dtype is exactly 0, ±1 or ±inf while the float64 value (actlib in float64) is not.

The page's script ``book/_static/actlib-explorer.js`` only picks the precomputed arrays
that the sliders, check boxes and dtype buttons select and hands them to Plotly (served by
the build from ``_static/plotly/``, see the Makefile's ``plotly`` target): no activation is
evaluated in JavaScript. In Jupyter, where that script is absent, the ``<div>`` says so.

Every element of the output has a fixed id (``actlib-explorer`` or ``actlib-live-<name>``),
so the stored HTML changes only when the data does.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import elementwise as E
from . import hard as H
from .catalog import CATALOG
from .plotting import FAMILY_COLOURS

DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
"""The dtypes the explorer shows, in the order of its buttons."""

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _grid() -> tuple[float, ...]:
    fine = [k / 8 for k in range(-64, 65)]  # |x| <= 8
    middle = [k / 2 for k in range(17, 65)]  # 8 < |x| <= 32
    far = [8.0 * k for k in range(5, 41)]  # 32 < |x| <= 320
    outer = middle + far
    return tuple([-x for x in reversed(outer)] + fine + outer)


X_GRID: tuple[float, ...] = _grid()
"""The x of every curve: exactly representable in float16 and bfloat16 (checked in the tests)."""


@dataclass(frozen=True)
class Parameter:
    """One slider: the keyword argument ``name`` takes each of ``values``; ``default`` is one of them."""

    name: str
    label: str
    values: tuple
    default: object

    def __post_init__(self):
        if self.default not in self.values:
            raise ValueError(f"Parameter {self.name}: default {self.default!r} not in its values")


def _silu_beta(x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Swish-β, x σ(βx), as actlib.silu(βx)/β (β = 1 is SiLU itself)."""
    return E.silu(x) if beta == 1 else E.silu(x * beta) / beta


def _prelu(x: torch.Tensor, weight: float = 0.25) -> torch.Tensor:
    return E.prelu(x, torch.tensor([weight], dtype=x.dtype))


_SLOPES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
_ALPHAS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)

PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "leaky_relu": (Parameter("negative_slope", "slope", _SLOPES, 0.01),),
    "prelu": (Parameter("weight", "a", (-0.5, -0.25, 0.0, 0.1, 0.25, 0.5, 1.0), 0.25),),
    "rrelu": (
        Parameter("lower", "lower", (0.0625, 0.125, 0.25), 0.125),
        Parameter("upper", "upper", (0.25, 1 / 3, 0.5), 1 / 3),
    ),
    "elu": (Parameter("alpha", "α", _ALPHAS, 1.0),),
    "celu": (Parameter("alpha", "α", _ALPHAS, 1.0),),
    "softplus": (
        Parameter("beta", "β", (0.25, 0.5, 1.0, 2.0, 4.0, 8.0), 1.0),
        Parameter("threshold", "threshold", (2.0, 5.0, 10.0, 20.0), 20.0),
    ),
    "silu": (Parameter("beta", "β", (0.25, 0.5, 1.0, 1.5, 2.0, 4.0, 8.0), 1.0),),
    "gelu": (Parameter("approximate", "approximate", ("none", "tanh"), "none"),),
    "hardtanh": (
        Parameter("min_val", "min_val", (-3.0, -2.0, -1.0, -0.5, 0.0), -1.0),
        Parameter("max_val", "max_val", (0.5, 1.0, 2.0, 3.0), 1.0),
    ),
}
"""The grid of each parameter the explorer offers (activations not named here have none)."""

# The callable the explorer evaluates, where it is not the catalog's functional itself.
_FUNCTIONS: dict[str, Callable] = {"prelu": _prelu, "silu": _silu_beta, "hardtanh": H.hardtanh}

EXPLORABLE: tuple[str, ...] = tuple(
    name for name, record in CATALOG.items() if record.kind in ("elementwise", "parametric")
)
"""The catalog's scalar functions of one x; gated units, softmax, maxout and argmax are not."""

DEFAULT_SHOWN: tuple[str, ...] = ("elu", "silu")
"""The activations ticked when the explorer page opens."""


def _function(name: str) -> Callable:
    return _FUNCTIONS.get(name, CATALOG[name].functional)


def settings(name: str) -> list[dict]:
    """Every combination of ``name``'s parameter values, last parameter fastest (the JS order)."""
    parameters = PARAMETERS.get(name, ())
    grids = [parameter.values for parameter in parameters]
    return [
        {parameter.name: value for parameter, value in zip(parameters, combo, strict=True)}
        for combo in itertools.product(*grids)
    ]


def evaluate(name: str, dtype: str | torch.dtype, x: Sequence[float] | None = None, **params):
    """f(x) and f′(x) of activation ``name`` by actlib, computed in ``dtype`` (also float64).

    Returns two float64 tensors holding the ``dtype`` values exactly. f′ is autograd's
    gradient of Σ f(x) through actlib's backward, with grad_output = ones in ``dtype``.
    ``float32`` is the exception: computed in float64 and rounded once to float32, so that
    the values are the same on every CPU instruction set.
    """
    _check_name(name)
    torch_dtype = _TORCH_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"actlib.explorer: dtype must be one of {DTYPES} or float64, got {dtype!r}")
    known = {parameter.name for parameter in PARAMETERS.get(name, ())}
    if unknown := set(params) - known:
        raise TypeError(
            f"actlib.explorer: {name} has no parameter {', '.join(sorted(unknown))} in the "
            f"explorer (it has: {', '.join(sorted(known)) or 'none'})"
        )
    grid = torch.tensor(X_GRID if x is None else list(x), dtype=torch.float64)
    # float32 is float64 rounded once: actlib's own float32 results differ from it by an ulp
    # or two, differently on each CPU instruction set, and the stored page must not.
    compute_dtype = torch.float64 if torch_dtype == torch.float32 else torch_dtype
    inputs = grid.to(compute_dtype).requires_grad_(True)
    with torch.enable_grad():
        y = _function(name)(inputs, **params)
        (dy,) = torch.autograd.grad(y, inputs, torch.ones_like(y))
    return y.detach().to(torch_dtype).double(), dy.to(torch_dtype).double()


def _rounded_to(value: torch.Tensor, truth: torch.Tensor) -> dict[str, list[int]]:
    """Indices where ``value`` is exactly 0, ±1 or ±inf (or NaN) while the float64 ``truth`` is not."""
    marks = {
        "zero": (value == 0) & (truth != 0),
        "one": (value.abs() == 1) & (truth.abs() != 1),
        "inf": value.isinf() & truth.isfinite(),
        "nan": value.isnan() & ~truth.isnan(),
    }
    return {kind: mask.nonzero().flatten().tolist() for kind, mask in marks.items()}


def rounds_from(name: str, dtype: str, curve: str = "f", kind: str = "one", side: int = 1,
                **params) -> float | None:
    """The grid x nearest 0 on ``side`` (+1 or −1) where ``curve`` ("f" or "df") of ``name``
    in ``dtype`` rounds to ``kind`` ("zero", "one", "inf" or "nan"), or None if nowhere."""
    if curve not in ("f", "df") or kind not in ("zero", "one", "inf", "nan") or side not in (1, -1):
        raise ValueError(
            f"actlib.explorer.rounds_from: curve must be 'f' or 'df', kind one of zero/one/"
            f"inf/nan, side +1 or -1; got {curve!r}, {kind!r}, {side!r}"
        )
    values = evaluate(name, dtype, **params)[curve == "df"]
    truth = evaluate(name, torch.float64, **params)[curve == "df"]
    marked = [X_GRID[i] for i in _rounded_to(values, truth)[kind] if X_GRID[i] * side > 0]
    return min(marked, key=abs) if marked else None


def _shortest(values: torch.Tensor, dtype: torch.dtype) -> list[str]:
    """The shortest decimal of each value that reads back as the same ``dtype`` number."""
    out: list[str | None] = [None] * len(values)
    exact = values.tolist()
    for index, v in enumerate(exact):
        if v != v or v in (float("inf"), float("-inf")):
            out[index] = "null"  # JSON has no inf/NaN: a gap in the curve, named by the marks
        elif v == int(v) and abs(v) < 2**24:
            out[index] = str(int(v))
    for digits in range(1, 18):
        pending = [i for i, s in enumerate(out) if s is None]
        if not pending:
            break
        texts = [f"{exact[i]:.{digits}g}" for i in pending]
        back = torch.tensor([float(t) for t in texts], dtype=torch.float64).to(dtype).double()
        for i, text, number in zip(pending, texts, back.tolist(), strict=True):
            if number == exact[i]:
                out[i] = text
    return [s if s is not None else repr(exact[i]) for i, s in enumerate(out)]


class _Raw(str):
    """A number already written as JSON text."""


def _dumps(obj) -> str:
    if isinstance(obj, _Raw):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dumps(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(_dumps(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


def _numbers(values: torch.Tensor, dtype: torch.dtype) -> _Raw:
    return _Raw("[" + ",".join(_shortest(values, dtype)) + "]")


def activation_data(name: str) -> dict:
    """The explorer's JSON-ready record of one activation: parameters, and per setting and
    dtype the arrays ``f``, ``df`` and the rounding marks ``f_marks``, ``df_marks``."""
    record = CATALOG[name] if name in CATALOG else None
    if record is None:
        raise KeyError(f"actlib.explorer: no activation {name!r} in actlib.catalog.CATALOG")
    entry = {
        "name": name,
        "title": record.title,
        "chapter": record.chapter,
        "colour": FAMILY_COLOURS.get(name, "#333333"),
        "parameters": [
            {
                "name": p.name,
                "label": p.label,
                "values": list(p.values),
                "labels": [_label(v) for v in p.values],
                "default": p.values.index(p.default),
            }
            for p in PARAMETERS.get(name, ())
        ],
        "settings": [],
    }
    for params in settings(name):
        truth_f, truth_df = evaluate(name, torch.float64, **params)
        per_dtype = {}
        for dtype in DTYPES:
            f, df = evaluate(name, dtype, **params)
            torch_dtype = _TORCH_DTYPES[dtype]
            per_dtype[dtype] = {
                "f": _numbers(f, torch_dtype),
                "df": _numbers(df, torch_dtype),
                "f_marks": _rounded_to(f, truth_f),
                "df_marks": _rounded_to(df, truth_df),
            }
        entry["settings"].append({"params": params, **per_dtype})
    return entry


def _label(value) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.3g}"


class Explorer:
    """What :func:`explorer` and :func:`live_figure` return: displays as the interactive figure.

    ``data`` is the JSON-ready dict (x grid, dtypes, one :func:`activation_data` per
    activation); ``to_html()`` the ``<div>`` the book renders; ``repr()`` a one-line text
    summary (the notebook's ``text/plain`` output, the same on every machine).
    """

    def __init__(self, names: Sequence[str], mode: str, element_id: str, shown: Sequence[str]):
        self.names = tuple(names)
        self.mode = mode
        self.element_id = element_id
        self.data = {
            "mode": mode,
            "x": list(X_GRID),
            "dtypes": list(DTYPES),
            "shown": list(shown),
            "activations": [activation_data(name) for name in self.names],
        }

    def __repr__(self) -> str:
        count = sum(len(a["settings"]) for a in self.data["activations"])
        kind = "Activation explorer" if self.mode == "explorer" else "Live figure"
        return (
            f"{kind} ({', '.join(self.names)}): f and f′ by actlib at {count} parameter "
            f"setting(s) × {len(DTYPES)} dtypes ({', '.join(DTYPES)}), {len(X_GRID)} points "
            f"x ∈ [{X_GRID[0]:g}, {X_GRID[-1]:g}]; interactive in the HTML book"
        )

    def to_html(self) -> str:
        payload = _dumps(self.data).replace("</", "<\\/")  # no early </script>
        return (
            f'<div class="actlib-explorer" id="{html.escape(self.element_id)}" '
            f'data-actlib-explorer="{self.mode}">\n'
            f'<p class="actlib-explorer-fallback">{html.escape(repr(self))}. The sliders are '
            f"drawn by the book's script <code>_static/actlib-explorer.js</code>; in Jupyter "
            f"use the notebook's own widgets.</p>\n"
            f'<script type="application/json" class="actlib-explorer-data">{payload}</script>\n'
            f"</div>"
        )

    def _repr_html_(self) -> str:
        return self.to_html()


def _check_name(name: str) -> None:
    if name not in CATALOG:
        raise KeyError(f"actlib.explorer: no activation {name!r} in actlib.catalog.CATALOG")
    if name not in EXPLORABLE:
        raise ValueError(
            f"actlib.explorer: {name!r} is not a function of one scalar x "
            f"(kind {CATALOG[name].kind!r}); the explorer shows {', '.join(EXPLORABLE)}"
        )


def _check_names(names: Sequence[str]) -> None:
    if isinstance(names, str):
        raise TypeError("actlib.explorer: give a list of activation names, not one string")
    for name in names:
        _check_name(name)
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"actlib.explorer: give distinct activation names, got {list(names)}")


def explorer(names: Sequence[str] | None = None, shown: Sequence[str] = DEFAULT_SHOWN) -> Explorer:
    """The whole explorer: every :data:`EXPLORABLE` activation (or ``names``), ``shown`` ticked."""
    if isinstance(names, str):
        _check_names(names)  # raises: a string is not a list of names
    names = EXPLORABLE if names is None else tuple(names)
    _check_names(names)
    shown = [name for name in shown if name in names] or [names[0]]
    return Explorer(names, "explorer", "actlib-explorer", shown)


def live_figure(*names: str, element_id: str | None = None) -> Explorer:
    """One chapter's live figure of ``names`` (one or more activations, all drawn at once).

    ``live_figure("elu")`` in a code cell of the ELU chapter: sliders for α, the dtype
    buttons, f and f′. Its id is ``actlib-live-<names>`` unless ``element_id`` is given.
    """
    _check_names(names)
    element_id = element_id or "actlib-live-" + "-".join(names)
    return Explorer(names, "live", element_id, names)
