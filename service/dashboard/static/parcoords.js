// A sweep's parallel coordinates: one axis per parameter whose values differ between the
// jobs, and the chosen metric last; one line per job, coloured by its rank on the metric.
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
  const label = axisLabel(path);
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
    ticktext: names,
    range: [-0.5, Math.max(0.5, names.length - 0.5)],
  };
}

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 900;
const HEIGHT = 330;
const TOP = 34;
const BOTTOM = 22;
// Viridis at 9 stops: the colour of t in [0, 1].
const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}

export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]].map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  const f = x - i;
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * f)).join(",")})`;
}

/** A dimension's ticks as [value, text]: its own, else five evenly spaced numbers. */
function ticks(dim, low, high) {
  if (dim.tickvals) return dim.tickvals.map((v, i) => [v, dim.ticktext[i]]);
  if (low === high) return [[low, tick(low)]];
  return [0, 0.25, 0.5, 0.75, 1].map((f) => [low + (high - low) * f, tick(low + (high - low) * f)]);
}

/** An SVG that draws `jobs` (those with a value) as parallel coordinates. SVG, not Plotly's
 * parcoords: that one is WebGL, whose code generation the API's CSP (no unsafe-eval) refuses. */
export function parcoordsPlot() {
  const plot = h("div", { class: "chart parcoords", id: "batch-parcoords", dataset: { lines: "0", dimensions: "" } });

  function render(jobs, metric, mode, reduce, metricLabel) {
    const rated = jobs.filter((j) => reduced(j, metric, reduce) != null);
    const params = differing(rated);
    const colour = rated.map((j) => reduced(j, metric, reduce));
    const dimensions = [
      ...Object.entries(params).map(([path, values]) => dimension(path, values)),
      { label: `${metricLabel} (${reduce})`, values: colour },
    ];
    plot.dataset.lines = String(rated.length);
    plot.dataset.dimensions = dimensions.map((d) => d.label).join("|");
    plot.replaceChildren();
    if (!rated.length) return;
    const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: "100%", role: "img",
      "aria-label": `parallel coordinates of ${rated.length} jobs` });
    const left = 70;
    const right = WIDTH - 90;
    const step = dimensions.length > 1 ? (right - left) / (dimensions.length - 1) : 0;
    const scales = dimensions.map((dim) => {
      const [low, high] = dim.range || [Math.min(...dim.values), Math.max(...dim.values)];
      const y = (v) => (high === low ? (TOP + HEIGHT - BOTTOM) / 2 : HEIGHT - BOTTOM - ((v - low) / (high - low)) * (HEIGHT - BOTTOM - TOP));
      return { low, high, y };
    });
    const lines = svg("g", { class: "pc-lines" });
    // Worst first, so the best lines are drawn on top.
    const order = rated.map((_, i) => i).sort((a, b) => (mode === "min" ? colour[b] - colour[a] : colour[a] - colour[b]) || a - b);
    // Coloured by rank, not by value: a few diverged runs would give every other line of a
    // big sweep the same colour. The best is brightest either way. Many lines are drawn
    // fainter (the best ten stay solid), so a thousand jobs read as densities.
    const faint = Math.min(0.85, Math.max(0.12, 60 / rated.length));
    order.forEach((i, rank) => {
      const shade = viridis(rated.length > 1 ? rank / (rated.length - 1) : 1);
      const d = dimensions.map((dim, k) => `${k ? "L" : "M"}${(left + k * step).toFixed(1)},${scales[k].y(dim.values[i]).toFixed(1)}`).join("");
      const best = rank >= rated.length - 10;
      const line = svg("path", { d, class: "pc-line", stroke: shade, "stroke-opacity": best ? 1 : faint,
        "data-job-id": rated[i].id, "data-value": colour[i], "data-rank": rated.length - 1 - rank });
      line.append(svg("title", {}, `${rated[i].name || rated[i].id}: ${tick(colour[i])}`));
      lines.append(line);
    });
    root.append(lines);
    dimensions.forEach((dim, k) => {
      const x = left + k * step;
      const axis = svg("g", { class: "pc-axis" });
      axis.append(svg("line", { x1: x, x2: x, y1: TOP, y2: HEIGHT - BOTTOM }));
      axis.append(svg("text", { x, y: TOP - 14, "text-anchor": "middle", class: "pc-label" }, dim.label));
      for (const [value, text] of ticks(dim, scales[k].low, scales[k].high)) {
        axis.append(svg("text", { x: x - 6, y: scales[k].y(value) + 4, "text-anchor": "end", class: "pc-tick" }, text));
      }
      root.append(axis);
    });
    plot.append(root);
  }

  return { plot, render, destroy: () => plot.replaceChildren() };
}
