"""The explorer's data (actlib/explorer.py): what the book's interactive figures draw.

The values are read back from the JSON the page holds, and compared with references that do
not go through actlib: torch.nn.functional in float64, or a closed form. The rounding marks
are checked against where float16 and bfloat16 must round by their formats alone.
"""

import functools
import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from actlib import explorer as X

ROOT = Path(__file__).resolve().parents[1]
X64 = torch.tensor(X.X_GRID, dtype=torch.float64)


def page_data(figure: X.Explorer) -> dict:
    """The JSON exactly as the page's script reads it from the ``<script>`` element."""
    match = re.search(
        r'<script type="application/json" class="actlib-explorer-data">(.*?)</script>',
        figure.to_html(),
        re.S,
    )
    assert match, "no data element in the figure's HTML"
    return json.loads(match.group(1))


@functools.cache
def live_data(name: str) -> dict:
    return page_data(X.live_figure(name))


def curve(name: str, dtype: str, key: str = "f", **params) -> torch.Tensor:
    """One drawn array (``f`` or ``df``) from the page's JSON; JSON null (inf/NaN) → NaN."""
    data = live_data(name)
    (activation,) = data["activations"]
    (setting,) = [s for s in activation["settings"] if s["params"] == params]
    return torch.tensor([math.nan if v is None else v for v in setting[dtype][key]],
                        dtype=torch.float64)


def test_grid_is_exact_in_every_dtype():
    assert list(X.X_GRID) == sorted(set(X.X_GRID)) and X.X_GRID == tuple(-x for x in reversed(X.X_GRID))
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert torch.equal(X64.to(dtype).double(), X64), dtype


# (name, params, float64 reference of f built from torch.nn.functional or a closed form)
CASES = [
    ("elu", {"alpha": 0.5}, lambda x: F.elu(x, alpha=0.5)),
    ("celu", {"alpha": 2.0}, lambda x: F.celu(x, alpha=2.0)),
    ("leaky_relu", {"negative_slope": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    ("prelu", {"weight": -0.5}, lambda x: F.prelu(x, torch.tensor([-0.5], dtype=x.dtype))),
    ("rrelu", {"lower": 0.25, "upper": 0.5}, lambda x: torch.where(x > 0, x, 0.375 * x)),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, lambda x: F.softplus(x, beta=2.0, threshold=5.0)),
    ("silu", {"beta": 4.0}, lambda x: x * torch.sigmoid(4.0 * x)),
    ("gelu", {"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh")),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}, lambda x: F.hardtanh(x, -2.0, 0.5)),
    ("sigmoid", {}, torch.sigmoid),
    ("mish", {}, F.mish),
]


def derivative64(reference, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (dx,) = torch.autograd.grad(reference(x).sum(), x)
    return dx


@pytest.mark.parametrize(("name", "params", "reference"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_drawn_values_match_an_independent_reference(name, params, reference, dtype):
    torch_dtype = getattr(torch, dtype)
    finfo = torch.finfo(torch_dtype)
    # Points away from the kinks (0, ±2, 0.5, softplus's threshold at x = 2.5), where the
    # one-sided derivative conventions could differ; |x| ≤ 8 where nothing rounds to 0.
    keep = (X64.abs() <= 8) & ~torch.isin(X64, torch.tensor([0.0, 0.5, -2.0, 2.5], dtype=torch.float64))
    slope = derivative64(reference, X64)
    if name == "sigmoid" and dtype != "float32":
        # actlib's σ′ = σ(1 − σ) from the saved output, which was rounded to the dtype.
        rounded = torch.sigmoid(X64).to(torch_dtype).double()
        slope = rounded * (1 - rounded)
    for key, truth in (("f", reference(X64)), ("df", slope)):
        drawn = curve(name, dtype, key, **params)
        # One rounding to the dtype, plus a few float32 ulps of the computation (in float32).
        tolerance = 4 * finfo.eps * truth.abs() + 8 * torch.finfo(torch.float32).eps * (1 + truth.abs())
        error = (drawn - truth).abs()
        assert bool((error[keep] <= tolerance[keep]).all()), (
            f"{name} {params} {dtype} {key}: worst error {error[keep].max():.3g} at "
            f"x = {X64[keep][error[keep].argmax()]:g}"
        )
        # And each decimal on the page reads back as exactly actlib's value in that dtype.
        computed = X.evaluate(name, dtype, **params)[key == "df"].to(torch_dtype)
        assert torch.equal(drawn.to(torch_dtype).nan_to_num(), computed.nan_to_num())


def test_settings_order_is_the_pages_mixed_radix():
    """The script finds a setting as Σ index_k · Π(len of later grids): last parameter fastest."""
    data = live_data("hardtanh")["activations"][0]
    low, high = data["parameters"]
    for i, lo in enumerate(low["values"]):
        for j, hi in enumerate(high["values"]):
            index = i * len(high["values"]) + j
            assert data["settings"][index]["params"] == {"min_val": lo, "max_val": hi}
    assert low["values"][low["default"]] == -1.0 and high["values"][high["default"]] == 1.0


def first_marked(name, dtype, key, kind, side, **params):
    return X.rounds_from(name, dtype, key, kind, side, **params)


def first_grid_beyond(bound: float) -> float:
    """The grid x nearest 0 with |x| > |bound|, on bound's side."""
    return min((x for x in X.X_GRID if x * math.copysign(1, bound) > abs(bound)), key=abs)


def test_rounding_marks_are_where_the_formats_put_them():
    # σ(x) rounds to 1 once 1 − σ(x) = 1/(1 + eˣ) is at most half the spacing below 1:
    # 2⁻¹² in float16 (11 bits), 2⁻⁹ in bfloat16 (8 bits); a tie goes to the even 1.
    assert first_marked("sigmoid", "float16", "f", "one", 1) == first_grid_beyond(math.log(2**12 - 1))
    assert first_marked("sigmoid", "bfloat16", "f", "one", 1) == first_grid_beyond(math.log(2**9 - 1))
    # σ′ = σ(1 − σ) from the saved output: exactly 0 wherever σ rounded to 1.
    assert first_marked("sigmoid", "float16", "df", "zero", 1) == first_grid_beyond(math.log(2**12 - 1))
    # float16 flushes σ(x) ≈ eˣ to 0 below half its smallest subnormal, 2⁻²⁵.
    assert first_marked("sigmoid", "float16", "f", "zero", -1) == first_grid_beyond(-25 * math.log(2))
    # tanh x rounds to 1 in float16 once 2/(e^{2x} + 1) ≤ 2⁻¹².
    assert first_marked("tanh", "float16", "f", "one", 1) == first_grid_beyond(math.log(2**13 - 1) / 2)
    assert first_marked("tanh", "float16", "f", "one", -1) == -first_grid_beyond(math.log(2**13 - 1) / 2)
    # float16 overflows above 65504 (values from 65520 on round to inf): x² from x = 256;
    # bfloat16 and float32 reach 3.4e38 and never overflow on the grid.
    data = live_data("squared_relu")["activations"][0]["settings"][0]
    expected = [i for i, x in enumerate(X.X_GRID) if x > 0 and x * x >= 65520]
    assert data["float16"]["f_marks"]["inf"] == expected and X.X_GRID[expected[0]] == 256
    assert all(data["float16"]["f"][i] is None for i in expected)  # a gap, not a number
    explorer = page_data(X.explorer())
    for activation in explorer["activations"]:
        for setting in activation["settings"]:
            for dtype in ("float32", "bfloat16"):
                assert not setting[dtype]["f_marks"]["inf"], (activation["name"], dtype)
            for dtype in X.DTYPES:
                assert not setting[dtype]["f_marks"]["nan"], (activation["name"], dtype)


def test_html_is_stable_and_self_contained():
    figure = X.live_figure("elu")
    text = figure.to_html()
    assert text == X.live_figure("elu").to_html()  # no uuid, no timestamp
    assert 'id="actlib-live-elu"' in text and 'data-actlib-explorer="live"' in text
    assert text.count("</script>") == 1  # the JSON cannot end its element early
    assert figure._repr_html_() == text
    assert repr(figure).startswith("Live figure (elu): f and f′ by actlib at 8 parameter setting(s)")
    page = X.explorer()
    assert 'id="actlib-explorer"' in page.to_html()
    assert page.names == X.EXPLORABLE and "softmax" not in X.EXPLORABLE
    assert page_data(page)["shown"] == list(X.DEFAULT_SHOWN)
    # Every parameter grid is accepted by actlib (the settings compute), defaults are on it.
    for name in X.PARAMETERS:
        assert name in X.EXPLORABLE


def test_script_computes_no_activation():
    """The page's script only picks arrays: no exp, log, tanh, erf or powers in it."""
    script = (ROOT / "book" / "_static" / "actlib-explorer.js").read_text(encoding="utf-8")
    for call in ("Math.exp", "Math.log", "Math.tanh", "Math.pow", "Math.sqrt", "Math.expm1", "**"):
        assert call not in script, call


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: X.live_figure("nope"), KeyError, "no activation 'nope'"),
        (lambda: X.live_figure("softmax"), ValueError, "not a function of one scalar x"),
        (lambda: X.live_figure(), ValueError, "give distinct activation names"),
        (lambda: X.live_figure("elu", "elu"), ValueError, "give distinct activation names"),
        (lambda: X.explorer("elu"), TypeError, "not one string"),
        (lambda: X.evaluate("elu", "float16", beta=2.0), TypeError, "has no parameter beta"),
        (lambda: X.evaluate("elu", "int8"), ValueError, "dtype must be one of"),
        (lambda: X.evaluate("elu", torch.int32), ValueError, "dtype must be one of"),
        (lambda: X.rounds_from("elu", "float16", "g"), ValueError, "curve must be"),
        (lambda: X.Parameter("a", "a", (1, 2), 3), ValueError, "not in its values"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()
