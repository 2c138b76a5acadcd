/* The book's interactive activation figures (actlib/explorer.py writes their data).
 *
 * Each <div class="actlib-explorer"> holds, as JSON, f and f′ of some activations computed
 * by actlib at build time on a grid of x, for every value on the grid of each parameter
 * and for float32, float16 and bfloat16, with the points where a dtype rounds to 0, ±1 or
 * ±inf. This script builds the controls, picks the precomputed arrays they select and
 * hands them to Plotly (served from _static/plotly/, loaded only on a page with a figure).
 * It evaluates no activation: every number drawn comes from the JSON.
 */
(function () {
  "use strict";
  const here = document.currentScript ? document.currentScript.src : window.location.href;
  const PLOTLY_URL = new URL("plotly/plotly-basic.min.js", here).href;
  let plotlyLoading = null;

  function loadPlotly() {
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyLoading) {
      plotlyLoading = new Promise((resolve, reject) => {
        const tag = document.createElement("script");
        tag.src = PLOTLY_URL;
        tag.onload = () => resolve(window.Plotly);
        tag.onerror = () => reject(new Error("actlib-explorer: could not load " + PLOTLY_URL));
        document.head.appendChild(tag);
      });
    }
    return plotlyLoading;
  }

  const RANGES = [4, 8, 32, 320];
  const MARKS = {
    zero: { symbol: "x", text: "rounds to 0" },
    one: { symbol: "circle-open", text: "rounds to ±1" },
    inf: { symbol: "triangle-up", text: "rounds to ±inf" },
    nan: { symbol: "diamond-open", text: "NaN" },
  };
  // Activations of one family have similar colours: each drawn curve also gets its own dash.
  const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
  const CURVES = [
    { key: "f", marks: "f_marks", title: "f(x)", axis: "f(x)" },
    { key: "df", marks: "df_marks", title: "f′(x)", axis: "f′(x)" },
  ];

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  function settingIndex(activation, indices) {
    let index = 0;
    activation.parameters.forEach((parameter, i) => {
      index = index * parameter.values.length + indices[i];
    });
    return index;
  }

  function describe(activation, indices) {
    const parts = activation.parameters.map(
      (parameter, i) => parameter.label + " = " + parameter.labels[indices[i]]);
    if (!parts.length) return activation.title;
    const settings = "(" + parts.join(", ") + ")";
    // A long legend entry is cut off at the plot's edge: put the parameters on a second line.
    return activation.title + (activation.title.length + settings.length > 30 ? "<br>" : " ") + settings;
  }

  function build(root, Plotly) {
    const spec = JSON.parse(root.querySelector("script.actlib-explorer-data").textContent);
    const x = spec.x;
    const byName = {};
    spec.activations.forEach((activation) => { byName[activation.name] = activation; });
    const state = {
      shown: new Set(spec.shown),
      indices: {},
      dtype: spec.dtypes[0],
      curves: { f: true, df: true },
      range: 8,
    };
    const uid = root.id;
    const controls = element("div", { class: "actlib-explorer-controls" });

    if (spec.mode === "explorer") {
      const boxes = element("fieldset", { class: "actlib-explorer-activations" },
        [element("legend", { text: "Activations" })]);
      spec.activations.forEach((activation) => {
        const box = element("input", {
          type: "checkbox", id: uid + "-show-" + activation.name,
          "data-show": activation.name,
        });
        box.checked = state.shown.has(activation.name);
        box.addEventListener("change", () => {
          if (box.checked) state.shown.add(activation.name);
          else state.shown.delete(activation.name);
          redraw();
        });
        boxes.appendChild(element("label", { for: box.id }, [box,
          document.createTextNode(" " + activation.title)]));
      });
      controls.appendChild(boxes);
    }

    const sliders = element("div", { class: "actlib-explorer-sliders" });
    const groups = {};
    spec.activations.forEach((activation) => {
      state.indices[activation.name] = activation.parameters.map((p) => p.default);
      if (!activation.parameters.length) return;
      const group = element("fieldset", {
        class: "actlib-explorer-parameters", "data-activation": activation.name,
      }, [element("legend", { text: activation.title })]);
      activation.parameters.forEach((parameter, i) => {
        const id = uid + "-" + activation.name + "-" + parameter.name;
        const slider = element("input", {
          type: "range", id: id, min: "0", max: String(parameter.values.length - 1),
          step: "1", value: String(parameter.default),
          "data-activation": activation.name, "data-parameter": parameter.name,
          "aria-valuetext": parameter.label + " = " + parameter.labels[parameter.default],
        });
        const shown = element("output", { for: id, text: parameter.labels[parameter.default] });
        slider.addEventListener("input", () => {
          const index = Number(slider.value);
          state.indices[activation.name][i] = index;
          shown.textContent = parameter.labels[index];
          slider.setAttribute("aria-valuetext", parameter.label + " = " + parameter.labels[index]);
          redraw();
        });
        group.appendChild(element("label", { for: id, class: "actlib-explorer-slider" },
          [element("span", { text: parameter.label }), slider, shown]));
      });
      groups[activation.name] = group;
      sliders.appendChild(group);
    });
    controls.appendChild(sliders);

    const options = element("div", { class: "actlib-explorer-options" });
    const dtypes = element("fieldset", {}, [element("legend", { text: "dtype" })]);
    spec.dtypes.forEach((dtype) => {
      const radio = element("input", {
        type: "radio", name: uid + "-dtype", id: uid + "-dtype-" + dtype, value: dtype,
        "data-dtype": dtype,
      });
      radio.checked = dtype === state.dtype;
      radio.addEventListener("change", () => { state.dtype = dtype; redraw(); });
      dtypes.appendChild(element("label", { for: radio.id }, [radio,
        document.createTextNode(" " + dtype)]));
    });
    options.appendChild(dtypes);
    const curves = element("fieldset", {}, [element("legend", { text: "curves" })]);
    CURVES.forEach((curve) => {
      const box = element("input", { type: "checkbox", id: uid + "-curve-" + curve.key });
      box.checked = true;
      box.addEventListener("change", () => { state.curves[curve.key] = box.checked; redraw(); });
      curves.appendChild(element("label", { for: box.id }, [box,
        document.createTextNode(" " + curve.title)]));
    });
    options.appendChild(curves);
    const range = element("select", { id: uid + "-range", "aria-label": "x range" });
    RANGES.forEach((r) => {
      const option = element("option", { value: String(r), text: "x from −" + r + " to " + r });
      option.selected = r === state.range;
      range.appendChild(option);
    });
    range.addEventListener("change", () => { state.range = Number(range.value); redraw(); });
    options.appendChild(element("fieldset", {}, [element("legend", { text: "view" }), range]));
    controls.appendChild(options);

    const plots = element("div", { class: "actlib-explorer-plots" });
    const graphs = {};
    CURVES.forEach((curve) => {
      graphs[curve.key] = element("div", {
        class: "actlib-explorer-plot actlib-explorer-plot-" + curve.key,
        "data-curve": curve.key,
      });
      plots.appendChild(graphs[curve.key]);
    });
    const fallback = root.querySelector(".actlib-explorer-fallback");
    if (fallback) fallback.remove();
    root.appendChild(controls);
    root.appendChild(plots);

    function traces(curve) {
      const out = [];
      const limit = state.range;
      let low = Infinity;
      let high = -Infinity;
      let drawnCount = 0;
      spec.activations.forEach((activation) => {
        if (!state.shown.has(activation.name)) return;
        const dash = DASHES[drawnCount++ % DASHES.length];
        const indices = state.indices[activation.name];
        const setting = activation.settings[settingIndex(activation, indices)];
        const values = setting[state.dtype][curve.key];
        const meta = {
          activation: activation.name, params: setting.params, dtype: state.dtype,
          curve: curve.key,
        };
        values.forEach((v, i) => {
          if (v !== null && Math.abs(x[i]) <= limit) { low = Math.min(low, v); high = Math.max(high, v); }
        });
        out.push({
          type: "scatter", mode: "lines", x: x, y: values, meta: meta,
          name: describe(activation, indices),
          line: { color: activation.colour, width: 2.5, dash: dash },
          hovertemplate: "x = %{x}<br>" + curve.title + " = %{y}<extra>%{fullData.name}</extra>",
        });
        const marks = setting[state.dtype][curve.marks];
        Object.entries(MARKS).forEach(([kind, style]) => {
          const where = marks[kind].filter((i) => Math.abs(x[i]) <= limit);
          if (!where.length) return;
          out.push({
            type: "scatter", mode: "markers", x: where.map((i) => x[i]),
            y: where.map((i) => (kind === "zero" || kind === "one") ? values[i] : null),
            meta: Object.assign({ marks: kind }, meta),
            name: activation.title + ": " + style.text,
            marker: {
              symbol: style.symbol, size: 6, color: activation.colour,
              line: { width: 1.5, color: activation.colour },
            },
            hovertemplate: "x = %{x}: " + style.text + "<extra></extra>",
          });
        });
      });
      out.forEach((trace) => {  // ±inf and NaN have no y: draw them along the top edge
        if (trace.meta.marks === "inf" || trace.meta.marks === "nan") {
          trace.y = trace.x.map(() => (isFinite(high) ? high : 1));
        }
      });
      const pad = isFinite(high) ? Math.max((high - low) * 0.06, 0.05) : 1;
      return { data: out, yrange: isFinite(high) ? [low - pad, high + pad] : [-1, 1] };
    }

    function redraw() {
      Object.entries(groups).forEach(([name, group]) => { group.hidden = !state.shown.has(name); });
      CURVES.forEach((curve) => {
        const graph = graphs[curve.key];
        graph.style.display = state.curves[curve.key] ? "" : "none";
        if (!state.curves[curve.key]) return;
        const drawn = traces(curve);
        // The legend sits below the plot and takes its room from the figure's height: grow the
        // figure with the legend's lines, so that the plot keeps its size with many curves.
        const lines = drawn.data.reduce((n, trace) => n + trace.name.split("<br>").length, 0);
        const layout = {
          // Left-aligned: Plotly's tool bar appears at the top right on hover, over a centred title.
          title: { text: curve.title + " in " + state.dtype, font: { size: 15 }, x: 0, xref: "paper", xanchor: "left" },
          xaxis: { title: { text: "x" }, range: [-state.range, state.range], zeroline: true },
          yaxis: { title: { text: curve.axis }, range: drawn.yrange, zeroline: true },
          legend: { orientation: "h", x: 0, y: -0.22, yanchor: "top" },
          margin: { l: 60, r: 15, t: 40, b: 10 },
          height: 470 + 19 * Math.max(0, lines - 4),
          showlegend: true,
        };
        Plotly.react(graph, drawn.data, layout, {
          responsive: true, displaylogo: false, scrollZoom: false,
          modeBarButtonsToRemove: ["select2d", "lasso2d"],
        });
      });
      root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
    }

    redraw();
    root.dataset.ready = "1";
  }

  function start() {
    const roots = Array.from(document.querySelectorAll("div.actlib-explorer"));
    if (!roots.length) return;
    loadPlotly().then((Plotly) => roots.forEach((root) => build(root, Plotly)))
      .catch((error) => {
        roots.forEach((root) => { root.dataset.ready = "error"; });
        console.error(error);
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
