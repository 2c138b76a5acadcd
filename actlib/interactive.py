"""Sliders over an activation's parameters, for a notebook with a live kernel.

Two controls, both ``ipywidgets`` boxes that redraw a matplotlib figure when a slider moves::

    from actlib.interactive import activation_explorer, softmax_temperature_explorer

    activation_explorer(actlib.elu, {"alpha": (0.1, 3.0, 1.0)}, symbols={"alpha": "α"},
                        label=r"$\\mathrm{ELU}_\\alpha$", kinks=[0.0])
    activation_explorer(actlib.gelu, {"approximate": ["none", "tanh"]},
                        label=r"$\\mathrm{GELU}$", second_derivative=True)
    softmax_temperature_explorer([2.0, 1.0, 0.5, -1.0])

Everything drawn is computed by actlib: f by the function itself, f′ (and f″ on request)
by autograd through it, as in :func:`actlib.plotting.plot_function_and_derivative`, whose
figure style (mathematical labels, kink dots) the explorer reuses.

ipywidgets is an optional dependency (``pip install "actlib[interactive]"``); it is
imported only when a control is built, so ``import actlib`` does not need it. The controls
use only what ipywidgets 7 (Colab) and 8 (JupyterLab 4, Notebook 7) both have:
``FloatSlider``, ``FloatLogSlider``, ``Dropdown``, ``Image``, ``HTML``, ``VBox`` and
``observe``. The figure is rendered to PNG by matplotlib's Agg canvas and shown in an
``Image`` widget rather than through an ``Output`` widget: drawing then sends no display
messages, so a notebook executed without a browser (nbval, ``jupyter execute``) stores
one output for the control, its fixed text repr, on every machine.
"""

from __future__ import annotations

import inspect
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import plotting
from .softmax import argmax, softmax

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

INSTALL_HINT = (
    "actlib.interactive needs ipywidgets (>= 7.6): install it with "
    "`pip install \"actlib[interactive]\"` or `pip install ipywidgets` "
    "(Colab ships it already), then restart the kernel"
)


def _widgets():
    """The ipywidgets module, imported on first use, or an ImportError that says how to get it."""
    try:
        import ipywidgets
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return ipywidgets


@dataclass(frozen=True)
class _Slider:
    name: str
    low: float
    high: float
    value: float
    step: float
    log: bool = False


@dataclass(frozen=True)
class _Choice:
    name: str
    options: tuple[str, ...]
    value: str


def _nice_step(low: float, high: float) -> float:
    """A power of ten that cuts [low, high] into 20 to 200 steps."""
    return 10.0 ** math.floor(math.log10((high - low) / 20))


def _decimals(*numbers: float) -> int:
    """Digits after the point that show each of ``numbers`` exactly (at most 12)."""
    needed = 0
    for number in numbers:
        for digits in range(13):
            if abs(round(number, digits) - number) <= 1e-9 * max(1.0, abs(number)):
                break
        needed = max(needed, digits)
    return needed


def _parse_parameter(name: str, spec: Any) -> _Slider | _Choice:
    """``(low, high)``, ``(low, high, value)`` or ``(low, high, value, step)``: a slider;
    a list of strings: a drop-down whose first entry is the initial value.

    The slider's positions are the grid ``low + k * step``. A ``high`` off that grid is
    an error when the step is given (the slider could not reach it) and is lowered to the
    last grid point for the default step; the default value (the middle) is the nearest
    grid point. A given value between grid points is kept as given (e.g. SELU's exact
    constants): the readout rounds it, and moving the slider lands on the grid.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"parameter names must be Python identifiers, got {name!r}")
    if isinstance(spec, Sequence) and not isinstance(spec, str) and spec \
            and all(isinstance(option, str) for option in spec):  # fmt: skip
        if len(set(spec)) != len(spec):
            raise ValueError(f"parameter {name!r}: the options {list(spec)} repeat")
        return _Choice(name, tuple(spec), spec[0])
    if isinstance(spec, Sequence) and not spec:
        raise ValueError(f"parameter {name!r}: the list of options is empty")
    if not isinstance(spec, Sequence) or isinstance(spec, str) or not 2 <= len(spec) <= 4:
        raise ValueError(
            f"parameter {name!r}: give (low, high), (low, high, value), (low, high, value, "
            f"step) or a list of strings, got {spec!r}"
        )
    try:
        numbers = [float(number) for number in spec]
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r}: {spec!r} holds a non-number") from None
    if not all(math.isfinite(number) for number in numbers):
        raise ValueError(f"parameter {name!r}: {spec!r} must hold finite numbers")
    low, high = numbers[:2]
    if not low < high:
        raise ValueError(f"parameter {name!r}: the range [{low}, {high}] is empty (need low < high)")
    if len(numbers) > 2 and not low <= numbers[2] <= high:
        raise ValueError(
            f"parameter {name!r}: the value {numbers[2]} lies outside [{low}, {high}]"
        )
    step = numbers[3] if len(numbers) > 3 else _nice_step(low, high)
    if not 0 < step <= high - low:
        raise ValueError(f"parameter {name!r}: the step {step} must be in (0, {high - low}]")
    decimals = _decimals(low, step)
    last = math.floor((high - low) / step + 1e-9)
    grid_high = round(low + last * step, decimals)
    if abs(grid_high - high) > 1e-9 * max(1.0, abs(high)):
        if len(numbers) > 3:
            raise ValueError(
                f"parameter {name!r}: the maximum {high} is not on the slider's grid "
                f"{low} + k * {step} (the last point is {grid_high}); give a maximum or a "
                f"step so that (high - low) / step is a whole number"
            )
        high = grid_high
        if len(numbers) > 2 and numbers[2] > high:
            raise ValueError(
                f"parameter {name!r}: the value {numbers[2]} lies beyond the last point "
                f"{high} of the slider's grid {low} + k * {step} (the default step); give a "
                f"step so that (high - low) / step is a whole number"
            )
    if len(numbers) > 2:
        value = numbers[2]
    else:  # the grid point nearest the middle
        value = round(low + round((high - low) / 2 / step) * step, decimals)
    return _Slider(name, low, high, value, step)


def _check_names(function: Callable, names: Sequence[str]) -> None:
    """A clear error when ``function`` takes no keyword argument of one of ``names``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: trust the caller
        return
    parameters = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [
        p.name for p in parameters[1:]
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]  # fmt: skip
    for name in names:
        if name not in accepted:
            title = getattr(function, "__name__", "the function")
            takes = ", ".join(accepted) if accepted else "no parameters besides x"
            raise ValueError(f"{title} has no parameter {name!r}; it takes: {takes}")


def _make_control(widgets, parameter: _Slider | _Choice, description: str,
                  continuous_update: bool):  # fmt: skip
    style = {"description_width": "initial"}
    if isinstance(parameter, _Choice):
        return widgets.Dropdown(options=list(parameter.options), value=parameter.value,
                                description=description, style=style)  # fmt: skip
    if parameter.log:
        return widgets.FloatLogSlider(
            value=parameter.value, base=10, min=math.log10(parameter.low),
            max=math.log10(parameter.high), step=parameter.step, description=description,
            continuous_update=continuous_update, readout_format=".3g", style=style,
        )  # fmt: skip
    # Enough digits for every grid point low + k * step (0.15 + 0.25k needs two).
    decimals = max(
        0, -math.floor(math.log10(parameter.step)), _decimals(parameter.low, parameter.step)
    )
    return widgets.FloatSlider(
        value=parameter.value, min=parameter.low, max=parameter.high, step=parameter.step,
        description=description, continuous_update=continuous_update,
        readout_format=f".{decimals}f", style=style,
    )  # fmt: skip


def derivatives(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, second: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """f(x), f′(x) and (``second=True``) f″(x) of an element-wise ``fn``, by autograd through it.

    f″ differentiates actlib's backward once more (``create_graph=True``). Where f′ is
    piecewise constant (ReLU's family, hardtanh) the backward does not depend on x in a
    differentiable way and f″ is 0 away from the kinks.
    """
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (dy,) = torch.autograd.grad(y.sum(), x, create_graph=second)
    d2y = None
    if second:
        if dy.requires_grad:
            (d2,) = torch.autograd.grad(dy.sum(), x, allow_unused=True)
            d2 = torch.zeros_like(x) if d2 is None else d2
        else:
            d2 = torch.zeros_like(x)
        d2y = d2.detach().cpu().double().numpy()
    return y.detach().cpu().double().numpy(), dy.detach().cpu().double().numpy(), d2y


def _explorer_box(widgets):
    """A VBox whose text repr is fixed (nbval compares it) and names what it controls."""

    class Explorer(widgets.VBox):
        summary = ""

        def __repr__(self) -> str:
            return self.summary

    return Explorer


def _summary(kind: str, title: str, controls: Mapping[str, Any]) -> str:
    # ipywidgets cuts a repr at 110 characters: 6 significant digits keep it short.
    settings = ", ".join(
        f"{name}={control.value:.6g}" if isinstance(control.value, float)
        else f"{name}={control.value!r}"
        for name, control in controls.items()
    )  # fmt: skip
    return f"{kind}({title}: {settings})"


def _finite_pair(pair: Any, name: str) -> tuple[float, float]:
    """``(a, b)`` as two finite floats, or a ValueError that names ``name``."""
    try:
        a, b = (float(end) for end in pair)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers, got {pair!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must hold finite numbers, got ({a}, {b})")
    return a, b


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def activation_explorer(
    function: Callable[..., torch.Tensor],
    parameters: Mapping[str, Any],
    *,
    label: str | None = None,
    symbols: Mapping[str, str] | None = None,
    x_range: tuple[float, float] = (-5.0, 5.0),
    ylim: tuple[float, float] | None = None,
    kinks: Sequence[float] | Callable[..., Sequence[float]] = (),
    second_derivative: bool = False,
    num: int = 601,
    color: str | None = None,
    continuous_update: bool = False,
):
    r"""Sliders over ``function``'s parameters that redraw f and f′ (and f″) computed by actlib.

    ``function(x, **values)`` is an actlib function (``actlib.elu``) or a small wrapper
    (``lambda x, beta: actlib.silu(beta * x) / beta`` for Swish's β). ``parameters`` maps
    each keyword argument to its control: ``(low, high)``, ``(low, high, value)`` or
    ``(low, high, value, step)`` make a slider (the value defaults to the middle), a list
    of strings (``["none", "tanh"]``) a drop-down starting at its first entry.
    ``symbols`` gives the slider labels (``{"alpha": "α"}``), ``label`` the mathematical
    name of f in the legend (``r"$\mathrm{ELU}$"``). ``kinks`` lists the points where f′
    jumps, or is a function of the parameters returning them (hardtanh's bounds); there
    the figure breaks the dashed f′ and marks its one-sided limits, as
    :func:`actlib.plotting.plot_function_and_derivative` does. ``ylim`` fixes the y-axis
    so that a moving parameter shows as a moving curve. ``continuous_update=True`` redraws
    while a slider is dragged rather than when it is released.

    Returns an ipywidgets ``VBox`` (the controls, the figure, a status line); display it
    as a cell's last expression. Its ``figure`` attribute is the matplotlib Figure last
    drawn, ``controls`` maps each parameter to its widget (set ``.value`` to move it), and
    ``redraw()`` draws again. Raises ``ValueError`` for a parameter ``function`` does not
    take, an empty range, or a value outside its range, and ``ImportError`` (with the
    install command) without ipywidgets.
    """
    widgets = _widgets()
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    if not isinstance(parameters, Mapping) or not parameters:
        raise ValueError("parameters must be a non-empty mapping of name -> range or options")
    specs = [_parse_parameter(name, spec) for name, spec in parameters.items()]
    _check_names(function, [spec.name for spec in specs])
    symbols = dict(symbols or {})
    unknown = set(symbols) - set(parameters)
    if unknown:
        raise ValueError(f"symbols names {sorted(unknown)}, which are not among the parameters")
    low, high = _finite_pair(x_range, "x_range")
    if not low < high:
        raise ValueError(f"x_range ({low}, {high}) is empty (need low < high)")
    if ylim is not None:
        ylim = _finite_pair(ylim, "ylim")
        if not ylim[0] < ylim[1]:
            raise ValueError(f"ylim {tuple(ylim)} is empty (need bottom < top)")
    if isinstance(num, bool) or not isinstance(num, int) or num < 2:
        raise ValueError(f"num must be an int of at least 2 (points along x), got {num!r}")
    name = label or getattr(function, "__name__", "f")
    controls = {
        spec.name: _make_control(widgets, spec, symbols.get(spec.name, spec.name), continuous_update)
        for spec in specs
    }  # fmt: skip

    def values() -> dict[str, Any]:
        return {key: control.value for key, control in controls.items()}

    def kinks_now(settings: dict[str, Any]) -> list[float]:
        return [float(k) for k in (kinks(**settings) if callable(kinks) else kinks)]

    # Fail now, with the traceback in the cell, rather than inside a slider callback: at
    # the starting values, and at every option of each drop-down (the others at theirs).
    settings_to_try = [values()]
    for spec in specs:
        if isinstance(spec, _Choice):
            settings_to_try += [{**values(), spec.name: option} for option in spec.options[1:]]
    for settings in settings_to_try:
        try:
            derivatives(lambda x, s=settings: function(x, **s),
                        torch.zeros(3, dtype=torch.float64), second=second_derivative)  # fmt: skip
            kinks_now(settings)
        except Exception as error:
            if len(settings_to_try) > 1 and hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(f"activation_explorer: raised at the settings {settings}")
            raise

    box_class = _explorer_box(widgets)
    image = widgets.Image(format="png")
    status = widgets.HTML(value="")
    box = box_class(children=[*controls.values(), image, status])
    box.controls = controls
    box.image = image
    box.status = status
    box.summary = _summary("activation_explorer", name, controls)

    def redraw(*_ignored) -> None:
        settings = values()
        box.summary = _summary("activation_explorer", name, controls)
        with matplotlib.rc_context(plotting.STYLE):
            figure = Figure()
            ax = figure.add_subplot()
            try:
                fn = lambda x: function(x, **settings)  # noqa: E731
                # A kink outside x_range is not drawn (it would stretch the x axis).
                at = [k for k in kinks_now(settings) if low <= k <= high]
                plotting.plot_function_and_derivative(
                    fn, ax=ax, x_range=(low, high), label=name, num=num, color=color, kinks=at
                )
                f_line, d_line = ax.lines[0], ax.lines[1]
                f_line.set_gid("f")
                d_line.set_gid("f′")
                if second_derivative:
                    x = torch.linspace(low, high, num, dtype=torch.float64)
                    _, _, d2 = derivatives(fn, x, second=True)
                    xs = x.numpy()
                    for kink in at:  # f″ is a Dirac spike there: break the line
                        d2 = np.where(np.isclose(xs, kink, rtol=0, atol=1e-12), np.nan, d2)
                    ax.plot(xs, d2, color=f_line.get_color(), linestyle=":",
                            label=f"{name}″(x)", gid="f″")  # fmt: skip
                    ax.set_ylabel("f(x), f′(x) and f″(x)")
            except Exception as error:  # shown under the figure; the slider stays usable
                status.value = f"<b>cannot draw at {settings}:</b> {type(error).__name__}: {error}"
                return
            status.value = ""
            if ylim is not None:
                ax.set_ylim(*ylim)
            setting_text = ", ".join(
                f"{symbols.get(key, key)} = {value:.3g}" if isinstance(value, float)
                else f"{symbols.get(key, key)} = {value!r}"
                for key, value in settings.items()
            )  # fmt: skip
            ax.set_title(setting_text)
            ax.legend(loc="best")
            figure.tight_layout()
            image.value = _png(figure)
        box.figure = figure

    for control in controls.values():
        control.observe(redraw, names="value")
    box.redraw = redraw
    redraw()
    return box


def softmax_temperature_explorer(
    logits: Sequence[float] | torch.Tensor,
    temperature: tuple[float, float] | tuple[float, float, float] = (0.05, 20.0, 1.0),
    *,
    labels: Sequence[str] | None = None,
    show_argmax: bool = False,
    continuous_update: bool = False,
):
    """A logarithmic temperature slider over a bar chart of softmax(z / T) for fixed ``logits`` z.

    The probabilities come from :func:`actlib.softmax`; ``show_argmax=True`` also outlines
    the one-hot vector of :func:`actlib.argmax` (the T → 0 limit) and prints how far the
    largest probability is from it. ``temperature`` is ``(low, high)`` or
    ``(low, high, value)`` with 0 < low < high (the value defaults to 1 when inside, else
    the geometric middle). ``labels`` names the classes (default: their logits). Returns an ipywidgets ``VBox`` with ``figure``, ``controls`` and
    ``redraw`` as :func:`activation_explorer`'s.
    """
    widgets = _widgets()
    z = torch.as_tensor(logits, dtype=torch.float64).detach().cpu()
    if z.dim() != 1 or z.numel() < 2:
        raise ValueError(f"logits must be a 1-d vector of at least 2 entries, got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("logits must be finite")
    if labels is None:
        labels = [f"{value:g}" for value in z.tolist()]
    labels = [str(text) for text in labels]
    if len(labels) != z.numel():
        raise ValueError(f"{len(labels)} labels for {z.numel()} logits")
    if not isinstance(temperature, Sequence) or not 2 <= len(temperature) <= 3:
        raise ValueError(f"temperature must be (low, high) or (low, high, value), got {temperature!r}")
    low, high = float(temperature[0]), float(temperature[1])
    if not 0 < low < high or not math.isfinite(high):
        raise ValueError(f"the temperature range [{low}, {high}] must satisfy 0 < low < high")
    value = float(temperature[2]) if len(temperature) == 3 else (
        1.0 if low <= 1.0 <= high else math.sqrt(low * high))  # fmt: skip
    if not low <= value <= high:
        raise ValueError(f"the temperature {value} lies outside [{low}, {high}]")
    spec = _Slider("temperature", low, high, value, step=math.log10(high / low) / 200, log=True)
    control = _make_control(widgets, spec, "temperature T", continuous_update)
    controls = {"temperature": control}
    winner = int(argmax(z))

    box_class = _explorer_box(widgets)
    image = widgets.Image(format="png")
    status = widgets.HTML(value="")
    box = box_class(children=[control, image, status])
    box.controls = controls
    box.image = image
    box.status = status
    box.summary = _summary("softmax_temperature_explorer", f"{z.numel()} logits", controls)

    def redraw(*_ignored) -> None:
        t = float(control.value)
        box.summary = _summary("softmax_temperature_explorer", f"{z.numel()} logits", controls)
        # Shifted first: z / T itself overflows for large logits and small T.
        p = softmax((z - z.max()) / t, dim=0).numpy()
        positions = np.arange(z.numel())
        with matplotlib.rc_context(plotting.STYLE):
            figure = Figure()
            ax = figure.add_subplot()
            ax.bar(positions, p, color="#2171b5", label="softmax(z / T)", gid="softmax")
            title = f"T = {t:.3g}: largest probability {p.max():.3f}"
            if show_argmax:
                onehot = np.zeros(z.numel())
                onehot[winner] = 1.0
                ax.bar(positions, onehot, fill=False, edgecolor="black", linestyle="--",
                       label="one-hot argmax (T → 0)", gid="argmax")  # fmt: skip
                title += f", {1 - p[winner]:.2g} short of one-hot"
            ax.set_xticks(positions)
            ax.set_xticklabels(labels)
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("class (logit z)")
            ax.set_ylabel("probability")
            ax.set_title(title)
            ax.legend(loc="upper right")
            figure.tight_layout()
            image.value = _png(figure)
        box.figure = figure
        box.probabilities = p

    control.observe(redraw, names="value")
    box.redraw = redraw
    redraw()
    return box


def strip_widget_state(path: str) -> bool:
    """Remove what ``jupyter execute`` stores of the widgets in a notebook; True if it changed.

    That is the widget state in the metadata and the widget-view entry (a random model id)
    of each widget output, which keeps its text repr. With widget state in its metadata,
    myst-nb makes a page load require.js and the widget manager from a CDN (its
    ``nb_ipywidgets_js`` default), which the offline book must not; and both change on every
    run. A stored widget view without its state would open as "model not found" in Jupyter;
    the text repr reads as what it is until the cell runs. Command line:
    ``python -m actlib.interactive NOTEBOOK.ipynb ...``.
    """
    import json

    with open(path, encoding="utf-8") as file:
        notebook = json.load(file)
    changed = notebook.get("metadata", {}).pop("widgets", None) is not None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and len(data) > 1:
                del data[WIDGET_VIEW]
                changed = True
    if changed:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(notebook, file, indent=1, ensure_ascii=False)
            file.write("\n")
    return changed


if __name__ == "__main__":
    import sys

    for notebook_path in sys.argv[1:]:
        if strip_widget_state(notebook_path):
            print(f"removed the stored widget state and views from {notebook_path}")
