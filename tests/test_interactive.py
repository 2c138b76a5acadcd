"""The notebook sliders (actlib.interactive): moving a control redraws actlib's f, f′, f″.

A slider is moved by setting ``.value`` on its widget, as the browser does through the
widget's comm; the drawn data is read back from the matplotlib figure the control shows and
compared with torch's own function (or a finite difference), not with actlib again.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import actlib
from actlib.interactive import activation_explorer, softmax_temperature_explorer

BOOK = pathlib.Path(__file__).resolve().parent.parent / "book"


def drawn(explorer) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The curves the control shows now, by gid: "f", "f′" and (when drawn) "f″"."""
    (ax,) = explorer.figure.axes
    return {line.get_gid(): line.get_data() for line in ax.get_lines() if line.get_gid()}


def torch_reference(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """torch's f and its autograd derivative at the points x (float64)."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(t)
    (dy,) = torch.autograd.grad(y.sum(), t)
    return y.detach().numpy(), dy.numpy()


def finite(x, y):
    keep = np.isfinite(y)
    return x[keep], y[keep]


def test_moving_the_elu_slider_redraws_f_and_its_derivatives_at_the_new_alpha():
    explorer = activation_explorer(actlib.elu, {"alpha": (0.1, 3.0, 1.0)}, kinks=[0.0],
                                   second_derivative=True, x_range=(-4, 2), num=301)
    before = drawn(explorer)["f"][1].copy()
    explorer.controls["alpha"].value = 2.5
    curves = drawn(explorer)
    x, y = curves["f"]
    assert not np.allclose(y, before)  # the figure changed
    ref_y, ref_dy = torch_reference(lambda t: F.elu(t, alpha=2.5), x)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    xd, dy = finite(*curves["f′"])  # the kink is a NaN break in f′
    _, ref_dy = torch_reference(lambda t: F.elu(t, alpha=2.5), xd)
    np.testing.assert_allclose(dy, ref_dy, rtol=1e-12, atol=1e-12)
    x2, d2 = finite(*curves["f″"])
    np.testing.assert_allclose(d2, np.where(x2 <= 0, 2.5 * np.exp(x2), 0.0), rtol=1e-10, atol=1e-12)
    assert "alpha=2.5" in repr(explorer)
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_softplus_sliders_for_beta_and_threshold_match_torch():
    explorer = activation_explorer(actlib.softplus, {"beta": (0.25, 5.0, 1.0),
                                                     "threshold": (1.0, 20.0, 20.0)})  # fmt: skip
    explorer.controls["beta"].value = 3.0
    explorer.controls["threshold"].value = 4.0  # the linear branch now starts at x = 4/3
    x, y = drawn(explorer)["f"]
    ref_y, ref_dy = torch_reference(lambda t: F.softplus(t, beta=3.0, threshold=4.0), x)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(drawn(explorer)["f′"][1], ref_dy, rtol=1e-12, atol=1e-12)


def test_a_wrapper_function_gives_swish_beta_against_a_finite_difference():
    explorer = activation_explorer(lambda x, beta: actlib.silu(beta * x) / beta,
                                   {"beta": (0.1, 5.0, 1.0)}, x_range=(-3, 3), num=61)  # fmt: skip
    explorer.controls["beta"].value = 4.0
    curves = drawn(explorer)
    x, y = curves["f"]
    np.testing.assert_allclose(y, x / (1 + np.exp(-4.0 * x)), rtol=1e-12, atol=1e-14)
    h = 1e-6
    swish = lambda v: v / (1 + np.exp(-4.0 * v))  # noqa: E731
    np.testing.assert_allclose(curves["f′"][1], (swish(x + h) - swish(x - h)) / (2 * h), atol=1e-8)


def test_a_dropdown_switches_gelu_between_exact_and_tanh():
    explorer = activation_explorer(actlib.gelu, {"approximate": ["none", "tanh"]},
                                   second_derivative=True, x_range=(-4, 4), num=201)  # fmt: skip
    exact = drawn(explorer)["f"][1].copy()
    explorer.controls["approximate"].value = "tanh"
    x, y = drawn(explorer)["f"]
    ref_y, ref_dy = torch_reference(lambda t: F.gelu(t, approximate="tanh"), x)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(drawn(explorer)["f′"][1], ref_dy, rtol=1e-12, atol=1e-12)
    assert 1e-5 < np.abs(y - exact).max() < 1e-2  # the two forms differ, but barely
    assert "approximate='tanh'" in repr(explorer)


def test_hardtanh_bounds_move_the_kinks():
    explorer = activation_explorer(
        actlib.hardtanh, {"min_val": (-3.0, -0.1, -1.0), "max_val": (0.1, 3.0, 1.0)},
        kinks=lambda min_val, max_val: (min_val, max_val), x_range=(-4, 4), num=161,
    )  # fmt: skip
    explorer.controls["max_val"].value = 2.0
    x, y = drawn(explorer)["f"]
    np.testing.assert_array_equal(y, F.hardtanh(torch.tensor(x), -1.0, 2.0).numpy())
    (ax,) = explorer.figure.axes
    dots = {float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_marker() == "o"}
    assert dots == {-1.0, 2.0}  # the one-sided limits are marked at the new bounds
    xd, dy = drawn(explorer)["f′"]
    assert np.isnan(dy[xd == 2.0]).any()  # f′ is broken at the moved kink, not joined


def test_moving_the_temperature_redraws_softmax_and_approaches_argmax():
    logits = [2.0, 1.0, 0.5, -1.0]
    explorer = softmax_temperature_explorer(logits, show_argmax=True)
    (ax,) = explorer.figure.axes
    heights_at_1 = [bar.get_height() for bar in ax.patches if bar.get_gid() == "softmax"]
    explorer.controls["temperature"].value = 0.2
    (ax,) = explorer.figure.axes
    heights = np.array([bar.get_height() for bar in ax.patches if bar.get_gid() == "softmax"])
    reference = torch.softmax(torch.tensor(logits, dtype=torch.float64) / 0.2, dim=0).numpy()
    np.testing.assert_allclose(heights, reference, rtol=1e-12)
    assert not np.allclose(heights, heights_at_1)
    onehot = [bar.get_height() for bar in ax.patches if bar.get_gid() == "argmax"]
    assert onehot == [1.0, 0.0, 0.0, 0.0]
    assert 1 - heights[0] < 1e-2  # T = 0.2: within 1 % of the one-hot vector


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"beta": (0.1, 3.0)}, "elu has no parameter 'beta'; it takes: alpha, inplace"),
        ({"alpha": (2.0, 2.0)}, "is empty"),
        ({"alpha": (3.0, 1.0)}, "is empty"),
        ({"alpha": (0.1, 3.0, 5.0)}, "outside"),
        ({"alpha": []}, "empty"),
        ({"alpha": (0.1, "a")}, "non-number"),
        ({}, "non-empty"),
    ],
)
def test_bad_parameters_give_a_clear_error(parameters, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        activation_explorer(actlib.elu, parameters)


def test_bad_ranges_and_logits_give_a_clear_error():
    with pytest.raises(ValueError, match="x_range"):
        activation_explorer(actlib.elu, {"alpha": (0.1, 3.0)}, x_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="symbols"):
        activation_explorer(actlib.elu, {"alpha": (0.1, 3.0)}, symbols={"beta": "β"})
    with pytest.raises(ValueError, match="0 < low < high"):
        softmax_temperature_explorer([1.0, 2.0], temperature=(0.0, 1.0))
    with pytest.raises(ValueError, match="at least 2"):
        softmax_temperature_explorer([1.0])


def test_a_bad_setting_reached_by_a_slider_is_reported_under_the_figure():
    explorer = activation_explorer(actlib.softplus, {"beta": (-1.0, 2.0, 1.0)})
    good = explorer.figure
    explorer.controls["beta"].value = -0.5  # softplus needs beta > 0
    assert "beta must be positive" in explorer.status.value
    assert explorer.figure is good  # the last good figure stays


def test_without_ipywidgets_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now fails
    with pytest.raises(ImportError, match=r"pip install \"actlib\[interactive\]\""):
        activation_explorer(actlib.elu, {"alpha": (0.1, 3.0)})


def test_import_actlib_does_not_import_ipywidgets():
    code = "import sys, actlib, actlib.interactive; print('ipywidgets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_repr_nbval_compares_is_fixed_text():
    explorer = activation_explorer(actlib.elu, {"alpha": (0.1, 3.0, 1.0)}, label="ELU")
    assert repr(explorer) == "activation_explorer(ELU: alpha=1)"
    bundle = explorer._repr_mimebundle_() if hasattr(explorer, "_repr_mimebundle_") else None
    if bundle is not None:  # ipywidgets 8: the text/plain nbval stores and compares
        assert bundle["text/plain"] == "activation_explorer(ELU: alpha=1)"


def _widget_cells():
    for path in sorted(BOOK.rglob("*.ipynb")):
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "_explorer(" in source:
                yield path, notebook, cell


def test_the_widget_cells_store_no_widget_state_and_no_figure_output():
    """The offline HTML book: widget state in a notebook makes myst-nb load require.js and
    the widget manager from a CDN, so stored notebooks carry none (``jupyter execute`` with
    ``python -m actlib.interactive NOTEBOOK`` after ``jupyter execute``), and the HTML
    leaves the cell's output out."""
    cells = list(_widget_cells())
    assert len({path for path, _, _ in cells}) >= 8
    for path, notebook, cell in cells:
        assert "widgets" not in notebook["metadata"], f"{path} stores widget state"
        assert "remove-output" in cell["metadata"].get("tags", []), f"{path}: tag remove-output"
        kinds = [output["output_type"] for output in cell.get("outputs", [])]
        assert kinds == ["execute_result"], f"{path}: a widget cell shows only the control"
        (output,) = cell["outputs"]
        assert list(output["data"]) == ["text/plain"], f"{path}: stored widget view (model id)"
        assert "".join(output["data"]["text/plain"]).endswith(")")


def test_strip_widget_state_removes_the_state_and_the_views_but_keeps_the_text(tmp_path):
    from actlib.interactive import WIDGET_VIEW, strip_widget_state

    view = {"model_id": "0123abcd", "version_major": 2, "version_minor": 0}
    notebook = {
        "cells": [{"cell_type": "code", "source": [], "metadata": {}, "execution_count": 1,
                   "outputs": [{"output_type": "execute_result", "execution_count": 1,
                                "metadata": {}, "data": {WIDGET_VIEW: view,
                                                         "text/plain": ["explorer"]}}]}],
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    path = tmp_path / "widgets.ipynb"
    path.write_text(json.dumps(notebook))
    assert strip_widget_state(str(path)) is True
    stripped = json.loads(path.read_text())
    assert "widgets" not in stripped["metadata"]
    assert stripped["cells"][0]["outputs"][0]["data"] == {"text/plain": ["explorer"]}
    assert strip_widget_state(str(path)) is False  # nothing left to remove


# -- regressions from the adversarial review ------------------------------------------


def test_huge_logits_at_a_small_temperature_give_the_one_hot_softmax():
    explorer = softmax_temperature_explorer([1e308, 5e307])
    explorer.controls["temperature"].value = 0.05
    # (z - max z) / T = (0, -1e309): exp of it is exactly (1, 0); z / T alone overflowed
    np.testing.assert_array_equal(explorer.probabilities, [1.0, 0.0])


def test_kinks_outside_x_range_do_not_stretch_the_x_axis():
    def build(max_val):
        return activation_explorer(
            actlib.hardtanh, {"max_val": (0.5, 10.0, max_val)},
            kinks=lambda max_val: [-1.0, max_val], x_range=(-3.0, 3.0),
        )  # fmt: skip

    inside = build(2.0).figure.axes[0].get_xlim()
    explorer = build(8.0)
    (ax,) = explorer.figure.axes
    assert ax.get_xlim() == inside  # the same axis as with both kinks inside
    assert ax.get_xlim()[1] < 3.5
    dots = {float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_marker() == "o"}
    assert dots == {-1.0}  # only the kink inside x_range is marked


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"num": 0}, "num must be an int of at least 2"),
        ({"num": 1}, "num must be an int of at least 2"),
        ({"num": 2.5}, "num must be an int of at least 2"),
        ({"num": True}, "num must be an int of at least 2"),
        ({"x_range": (0.0, float("inf"))}, "x_range must hold finite numbers"),
        ({"x_range": (float("nan"), 1.0)}, "x_range must hold finite numbers"),
        ({"ylim": (0.0, float("inf"))}, "ylim must hold finite numbers"),
        ({"ylim": (1.0, 0.0)}, "ylim .* is empty"),
    ],
)
def test_bad_drawing_arguments_give_a_clear_error(keywords, message):
    with pytest.raises(ValueError, match=message):
        activation_explorer(actlib.elu, {"alpha": (0.1, 3.0)}, **keywords)


def test_every_dropdown_option_is_tried_when_the_control_is_built():
    with pytest.raises(ValueError, match="bogus") as caught:
        activation_explorer(actlib.gelu, {"approximate": ["none", "bogus"]})
    assert "'approximate': 'bogus'" in " ".join(getattr(caught.value, "__notes__", []))


def test_slider_readout_and_grid_follow_low_and_step():
    explorer = activation_explorer(actlib.elu, {"alpha": (0.15, 2.9, 1.15, 0.25)})
    slider = explorer.controls["alpha"]
    assert slider.readout_format == ".2f"  # 0.15 + 0.25 k needs two digits, not ".1f"
    assert (slider.min, slider.max, slider.value) == (0.15, 2.9, 1.15)
    with pytest.raises(ValueError, match=r"maximum 3.0 is not on the slider's grid.*2.9"):
        activation_explorer(actlib.elu, {"alpha": (0.15, 3.0, 1.0, 0.25)})
    # the default step, a power of ten: the maximum is lowered onto its grid, and the
    # default value is the grid point nearest the middle of that range
    slider = activation_explorer(actlib.elu, {"alpha": (0.05, 20.0)}).controls["alpha"]
    assert slider.step == 0.1 and slider.max == 19.95
    assert slider.value == 9.95  # the middle of [0.05, 19.95], a grid point
    assert slider.readout_format == ".2f"
    with pytest.raises(ValueError, match=r"value 20.0 lies beyond the last point 19.95"):
        activation_explorer(actlib.elu, {"alpha": (0.05, 20.0, 20.0)})
