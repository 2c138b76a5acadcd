"""The function-and-derivative figure: values by autograd, kinks drawn as dots, not joined."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import actlib  # noqa: E402


def test_kink_breaks_the_derivative_and_marks_the_one_sided_values():
    fig, ax = plt.subplots()
    actlib.plotting.plot_function_and_derivative(actlib.relu, ax=ax, label="ReLU", kinks=[0.0])
    function, derivative, *markers = ax.get_lines()[:2] + [
        line for line in ax.get_lines() if line.get_marker() == "o"
    ]
    xd, yd = derivative.get_data()
    at_kink = np.flatnonzero(xd == 0.0)
    assert len(at_kink) >= 1 and np.isnan(yd[at_kink]).any()  # no vertical segment at 0
    dots = {(float(m.get_xdata()[0]), float(m.get_ydata()[0]), m.get_markerfacecolor()) for m in markers}
    filled = {(x, y) for x, y, face in dots if face != "white"}
    hollow = {(x, y) for x, y, face in dots if face == "white"}
    assert filled == {(0.0, 0.0)}  # ReLU′(0) = 0, PyTorch's convention
    assert hollow == {(0.0, 1.0)}  # the right-hand limit
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ReLU(x)", "ReLU′(x)"]
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)


def test_without_kinks_the_curves_are_autograd_values():
    fig, ax = plt.subplots()
    actlib.plotting.plot_function_and_derivative(actlib.sigmoid, ax=ax, x_range=(-2, 2), num=5)
    function, derivative = ax.get_lines()[:2]
    x = np.linspace(-2, 2, 5)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(function.get_ydata(), s, rtol=1e-12)
    np.testing.assert_allclose(derivative.get_ydata(), s * (1 - s), rtol=1e-12)
    assert not any(math.isnan(v) for v in derivative.get_ydata())
    plt.close(fig)


def test_a_grid_point_on_the_kink_is_not_joined_to_either_side():
    fig, ax = plt.subplots()
    actlib.plotting.plot_function_and_derivative(
        actlib.relu, ax=ax, x_range=(-2, 2), num=5, kinks=[0.0]
    )  # -2, -1, 0, 1, 2: one grid point exactly on the kink
    xd, yd = ax.get_lines()[1].get_data()
    at_kink = np.flatnonzero(xd == 0.0)
    assert len(at_kink) == 1 and np.isnan(yd[at_kink[0]])
    assert np.isnan(yd).sum() == 1  # the break only, no stray gap
    plt.close(fig)


def test_every_hidden_activation_has_a_colour():
    from actlib import analysis
    from actlib.plotting import FAMILY_COLOURS

    assert set(analysis.hidden_activations()) <= set(FAMILY_COLOURS)
    assert len(set(FAMILY_COLOURS.values())) == len(FAMILY_COLOURS)  # no two share one


def test_monitor_plots_one_curve_per_layer_and_weight():

    import pytest
    import torch
    from torch import nn

    from actlib.monitor import TrainingMonitor
    from actlib.plotting import plot_layer_histograms, plot_ratio_history

    net = nn.Sequential(nn.Linear(4, 8), actlib.Tanh(), nn.Linear(8, 8), actlib.ReLU(), nn.Linear(8, 1))
    monitor = TrainingMonitor(net, every=1, warn_dead=1.0, update_range=(0, float("inf")))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        monitor.after_backward()
        optimizer.step()
        monitor.after_step()
    assert len(plot_layer_histograms(monitor).get_lines()) == 2
    assert len(plot_layer_histograms(monitor, step=0, kind="gradients").get_lines()) == 2
    assert len(plot_ratio_history(monitor).get_lines()) == 3 + 1  # three matrices + the 1e-3 line
    with pytest.raises(ValueError, match="no record at step 7"):
        plot_layer_histograms(monitor, step=7)


def test_binned_layers_draw_one_curve_per_stored_row_at_the_bin_centres():
    import pytest

    from actlib.plotting import plot_binned_layers, plot_histogram_grid

    rows = [
        {"layer": "2", "low": "0", "high": "1", "counts": "0.5 0.25 0.25 0"},
        {"layer": "1", "low": "-1", "high": "1", "counts": [0.0, 1.0]},
    ]
    ax = plot_binned_layers(rows, title="t")
    first, second = ax.get_lines()
    assert first.get_label() == "layer 1" and second.get_label() == "layer 2"  # sorted by layer
    np.testing.assert_allclose(first.get_xdata(), [-0.5, 0.5])
    np.testing.assert_allclose(first.get_ydata(), [0.0, 1.0])
    np.testing.assert_allclose(second.get_xdata(), [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(second.get_ydata(), [0.5, 0.25, 0.25, 0.0])
    with pytest.raises(ValueError, match="no histogram rows"):
        plot_binned_layers([])
    grid = [{**row, "moment": moment, "kind": kind} for row in rows
            for moment in ("init", "final") for kind in ("activations", "gradients")]  # fmt: skip
    fig, axes = plot_histogram_grid(grid)
    assert [len(ax.get_lines()) for ax in axes.flat] == [2, 2, 2, 2]
    assert axes[1, 0].get_yscale() == "log" and axes[0, 0].get_yscale() == "linear"
    assert axes[0, 1].get_title() == "activations after training"
    plt.close(fig)
