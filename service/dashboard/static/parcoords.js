// A sweep's parallel coordinates: one axis per parameter whose values differ between the
// jobs, and the chosen metric last; one line per job, coloured by the metric.
import { draw, plotlyText, purge } from "./charts.js";
import { h } from "./dom.js";

/** {path: [value per job]} of the parameters whose values differ between `jobs`. */
export function differing(jobs) {
  const paths = [...new Set(jobs.flatMap((j) => Object.keys(j.params || {})))];
  const out = {};
  for (const path of paths) {
    const values = jobs.map((j) => (j.params || {})[path]);
    if (new Set(values.map((v) => JSON.stringify(v ?? null))).size > 1) out[path] = values;
  }
  return out;
}

/** The value of `metric` that ranks a job: its summary's `reduce` stat (last, min, max). */
export function reduced(job, metric, reduce) {
  const value = job.summary?.[metric]?.[reduce];
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** A dotted path's last segment, or its last three when they hold a list index. */
export function axisLabel(path) {
  const parts = path.split(".");
  const tail = parts.slice(-3);
  return tail.some((part) => /^\d+$/.test(part)) ? tail.join(".") : parts[parts.length - 1];
}

function tick(value) {
  if (typeof value !== "number") return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? String(+value.toPrecision(3)) : value.toExponential(1);
}

/** One Plotly parcoords dimension for a parameter: numbers as numbers (log10 when they span
 * two decades or more), anything else as categories. */
export function dimension(path, values) {
  const label = plotlyText(axisLabel(path));
  if (values.every((v) => typeof v === "number")) {
    const low = Math.min(...values);
    const high = Math.max(...values);
    if (low > 0 && high / low >= 100) {
      const decades = [];
      for (let e = Math.floor(Math.log10(low)); e <= Math.ceil(Math.log10(high)); e += 1) decades.push(e);
      return { label: `${label} (log)`, values: values.map(Math.log10), tickvals: decades,
        ticktext: decades.map((e) => tick(10 ** e)) };
    }
    return { label, values };
  }
  const names = [...new Set(values.map((v) => (typeof v === "string" ? v : JSON.stringify(v ?? null))))].sort();
  const index = new Map(names.map((name, i) => [name, i]));
  return {
    label,
    values: values.map((v) => index.get(typeof v === "string" ? v : JSON.stringify(v ?? null))),
    tickvals: names.map((_, i) => i),
    ticktext: names.map(plotlyText),
    range: [-0.5, Math.max(0.5, names.length - 0.5)],
  };
}

/** A div that draws `jobs` (those with a value) as parallel coordinates. */
export function parcoordsPlot() {
  const plot = h("div", { class: "chart", id: "batch-parcoords", dataset: { lines: "0", dimensions: "" } });

  function render(jobs, metric, mode, reduce, metricLabel) {
    const rated = jobs.filter((j) => reduced(j, metric, reduce) != null);
    const params = differing(rated);
    const colour = rated.map((j) => reduced(j, metric, reduce));
    const dimensions = [
      ...Object.entries(params).map(([path, values]) => dimension(path, values)),
      { label: plotlyText(`${metricLabel} (${reduce})`), values: colour },
    ];
    plot.dataset.lines = String(rated.length);
    plot.dataset.dimensions = dimensions.map((d) => d.label).join("|");
    if (!rated.length) {
      purge(plot);
      return;
    }
    draw(plot, [{
      type: "parcoords",
      dimensions,
      line: {
        color: colour,
        colorscale: "Viridis",
        reversescale: mode === "min", // the best jobs bright either way
        showscale: true,
        colorbar: { title: { text: plotlyText(metricLabel) }, thickness: 12 },
      },
    }], { margin: { l: 64, r: 48, t: 36, b: 24 }, hovermode: false });
  }

  return { plot, render, destroy: () => purge(plot) };
}
