// The explainer's depth question: how big δ^(l) is at each layer of one backprop pass
// (the trace's delta_norms). In a deep sigmoid network each layer multiplies δ by
// g'(z) ≤ 1/4 (and the weights) on its way back, so the first layers barely learn.
import { draw, PALETTE, purge } from "./charts.js";
import { h } from "./dom.js";

const chart = h("div", { class: "chart chart-small", id: "delta-chart" });

function exponent(value) {
  return value == null ? "—" : value.toExponential(1);
}

/** The card for `norms` = {m, layers: [{l, units, activation, delta_rms, delta_ratio, D_norm}]}. */
export function deltaCard(norms) {
  purge(chart);
  const layers = norms.layers;
  const first = layers[0];
  const shrink = first && first.delta_ratio != null && first.delta_ratio < 0.01;
  const note = shrink
    ? `δ at layer ${first.l} is ${exponent(first.delta_ratio)} of the output layer's: the gradient vanishes on its way back, and the first layers get an error signal ${Math.round(1 / first.delta_ratio)}× weaker.`
    : "δ keeps its size on the way back: every layer gets a useful gradient.";
  const rows = layers.map((layer) => h("tr", { dataset: { layer: String(layer.l) } },
    h("td", {}, "δ", h("sup", {}, `(${layer.l})`)), h("td", {}, `${layer.units} ${layer.activation}`),
    h("td", { class: "num", dataset: { value: String(layer.delta_rms) } }, exponent(layer.delta_rms)),
    h("td", { class: "num", dataset: { value: String(layer.delta_ratio) } }, exponent(layer.delta_ratio)),
    h("td", { class: "num" }, exponent(layer.D_norm))));
  const card = h("section", { class: "card", id: "delta-card" },
    h("div", { class: "card-head" }, h("h2", {}, "How δ shrinks layer by layer"),
      h("span", { class: "muted small" }, "RMS of δ⁽ˡ⁾ over the examples and units, log scale")),
    h("p", { class: shrink ? "warning-line" : "muted", id: "delta-note" }, note),
    h("div", { class: "delta-grid" }, chart,
      h("table", { class: "table small", id: "delta-table" },
        h("thead", {}, h("tr", {}, ["layer", "units", "RMS δ", "÷ output", "‖D⁽ˡ⁻¹⁾‖"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows))));
  // Drawn once the card is in the page, at its final width.
  requestAnimationFrame(() => draw(chart, [{
    type: "bar", name: "RMS δ", x: layers.map((layer) => `δ<sup>(${layer.l})</sup> ${layer.activation}`),
    y: layers.map((layer) => layer.delta_rms), marker: { color: PALETTE[0] },
  }], { yaxis: { type: "log", title: { text: "RMS of δ" } }, xaxis: { title: { text: "layer (input side left)" } },
    showlegend: false, hovermode: "closest" }));
  return card;
}

/** Put the card right after the explainer's summary: the depth question comes first. */
export function showDelta(container, norms) {
  container.querySelector("#delta-card")?.remove();
  const summary = container.firstElementChild;
  if (summary) summary.after(deltaCard(norms));
  else container.append(deltaCard(norms));
}
