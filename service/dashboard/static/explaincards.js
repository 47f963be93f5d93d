// The explainer's result cards: the summary, the "why" text, the example stepper with Δ
// accumulating, and D beside the numerical gradient. Every number comes from the API
// responses; the stepper only adds per-example contributions, as the accumulator Δ does.
import { h, replace } from "./dom.js";
import { addInto, fmt, matrixTable, sup, vectorTable } from "./matrix.js";
import { networkDiagram } from "./netdiagram.js";

function thetaLabels(layerIndex, theta) {
  const l = layerIndex + 1;
  return {
    rowLabels: theta.map((_, j) => `unit ${j + 1}`),
    colLabels: theta[0].map((_, k) => (k === 0 ? "bias" : `a${k}${sup(l)}`)),
  };
}

// The two halves of the "why" card: a heading and its paragraphs.
const WHY = [
  ["δ is a gradient", [
    "For one example i, δ⁽ˡ⁾ is ∂Jᵢ/∂z⁽ˡ⁾: how much that example's cost changes when a unit's "
      + "pre-activation z moves. At the output, for a matched output/loss pair, it is simply a⁽ᴸ⁾ − y. "
      + "The chain rule carries it one layer back: δ⁽ˡ⁾ = (Θ⁽ˡ⁾)ᵀδ⁽ˡ⁺¹⁾ .* g′(z⁽ˡ⁾).",
    "A weight Θ⁽ˡ⁾ⱼₖ touches the cost only through z⁽ˡ⁺¹⁾ⱼ = Σₖ Θ⁽ˡ⁾ⱼₖ a⁽ˡ⁾ₖ, so "
      + "∂Jᵢ/∂Θ⁽ˡ⁾ⱼₖ = δ⁽ˡ⁺¹⁾ⱼ · a⁽ˡ⁾ₖ: the outer product δ⁽ˡ⁺¹⁾a⁽ˡ⁾ᵀ shown as “this example's "
      + "contribution” below is one example's whole gradient.",
  ]],
  ["Δ sums them because J is an average", [
    "The cost is J = (1/m) Σᵢ Jᵢ (+ the regularisation term). The derivative of a sum is the "
      + "sum of the derivatives, so ∂J/∂Θ = (1/m) Σᵢ ∂Jᵢ/∂Θ. Δ is that running sum: step through the "
      + "examples and watch it grow one contribution at a time.",
    "After the last example, D = Δ/m + (λ/m)Θ (bias column not regularised). The last card puts "
      + "D beside the numerical gradient (J(θ+ε) − J(θ−ε))/2ε: they agree, which is the proof on screen.",
  ]],
];

function explanation() {
  return h("section", { class: "card why", id: "why" },
    h("h2", {}, "Why are the deltas gradients, and why sum them?"),
    h("div", { class: "why-grid" },
      WHY.map(([title, paragraphs]) => h("div", {}, h("h3", {}, title),
        paragraphs.map((text) => h("p", {}, text))))));
}

function summaryCard(trace, check) {
  const item = (label, value, id) => h("div", { class: "meta" }, h("span", { class: "meta-label" }, label),
    h("span", { id }, value));
  return h("section", { class: "card" }, h("div", { class: "meta-grid" },
    item("Layer sizes", trace.layer_sizes.join(" → "), "trace-sizes"),
    item("Activations", trace.activations.join(", ")),
    item("Loss", trace.loss),
    item("Examples m", String(trace.m)),
    item("Cost J", fmt(trace.cost.total), "trace-cost"),
    item("= data + regularisation", `${fmt(trace.cost.data)} + ${fmt(trace.cost.regularization)}`),
    item("Weights", trace.weights.source === "init" ? `${trace.weights.init}, seed ${trace.weights.seed}` : "given"),
    item("Gradient check", `${check.passed ? "passed" : "FAILED"} (relative difference ${fmt(check.relative_difference)})`, "check-summary")),
  h("p", { class: "muted small" }, `Output error rule: ${trace.output_delta}`));
}

/** Say whether the per-example sum matches the full-batch Δ, and by how much. */
function sumCheck(running, Delta, l) {
  const difference = Math.max(...running.flat().map((v, i) => Math.abs(v - Delta.flat()[i])));
  const scale = Math.max(1, ...Delta.flat().map(Math.abs));
  const equal = difference <= 1e-9 * scale;
  return h("p", { class: `${equal ? "ok" : "error-line"} small`, dataset: { sumCheck: equal ? "equal" : "different" } },
    equal
      ? `The sum of the per-example contributions equals Δ${sup(l)} of the full-batch pass below (largest difference ${fmt(difference)}, rounding only).`
      : `The sum differs from the full-batch Δ${sup(l)} by up to ${fmt(difference)}.`);
}

function stepCard(trace) {
  const m = trace.examples.length;
  const thetas = trace.layers.filter((l) => l.Theta).map((l) => l.Theta);
  const body = h("div", { id: "step-body" });
  const label = h("strong", { id: "step-label" });
  const slider = h("input", { type: "range", min: 1, max: m, value: 1, id: "step-slider", "aria-label": "example" });
  const prev = h("button", { class: "button", type: "button", id: "step-prev" }, "← Previous example");
  const next = h("button", { class: "button", type: "button", id: "step-next" }, "Next example →");

  const show = (t) => {
    slider.value = String(t);
    prev.disabled = t <= 1;
    next.disabled = t >= m;
    const example = trace.examples[t - 1];
    label.textContent = `Example t = ${t} of ${m}:  x = [${example.x.map(fmt).join(", ")}],  y = [${example.y.map(fmt).join(", ")}]`;
    const vectors = h("div", { class: "layer-row" }, example.layers.map((layer, index) => {
      const units = trace.layer_sizes[index];
      const aLabels = layer.a.length > units ? ["a₀ = bias", ...Array.from({ length: units }, (_, k) => `a${k + 1}`)]
        : Array.from({ length: units }, (_, k) => `a${k + 1}`);
      return h("div", { class: "layer-col", dataset: { layer: String(layer.l) } },
        h("h4", {}, `Layer l = ${layer.l}`),
        h("div", { class: "vec-row" },
          vectorTable(layer.a, { name: `a${layer.l}`, labels: aLabels, caption: `a${sup(layer.l)}` }),
          layer.z ? vectorTable(layer.z, { name: `z${layer.l}`, caption: `z${sup(layer.l)}` }) : null,
          layer.delta ? vectorTable(layer.delta, { name: `delta${layer.l}`, caption: `δ${sup(layer.l)}` }) : null));
    }));
    const accumulation = trace.layers.filter((l) => l.Theta).map((full, index) => {
      let running = null;
      for (let s = 0; s < t; s += 1) running = addInto(running, trace.examples[s].layers[index].contribution);
      const labels = thetaLabels(index, full.Theta);
      const l = full.l;
      return h("div", { class: "accumulate" },
        h("h4", {}, `Θ${sup(l)}: layer ${l} → ${l + 1}`),
        h("div", { class: "matrix-row" },
          matrixTable(example.layers[index].contribution, { ...labels, name: `contribution${l}`,
            caption: `example ${t}: δ${sup(l + 1)}a${sup(l)}ᵀ` }),
          h("span", { class: "op" }, "→"),
          matrixTable(running, { ...labels, name: `running${l}`,
            caption: t === m ? `Δ${sup(l)} after all ${m} examples` : `Δ${sup(l)} after ${t} of ${m}` })),
        t === m ? sumCheck(running, full.Delta, l) : null);
    });
    replace(body,
      h("div", { class: "diagram-wrap" }, networkDiagram(trace.layer_sizes, thetas, example)),
      h("h3", {}, "Forward (a, z) and backward (δ) for this example"), vectors,
      h("h3", {}, "Δ accumulates: each example adds its own gradient"), h("div", { class: "accumulate-grid" }, accumulation));
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  prev.addEventListener("click", () => show(Math.max(1, Number(slider.value) - 1)));
  next.addEventListener("click", () => show(Math.min(m, Number(slider.value) + 1)));
  show(1);
  return h("section", { class: "card", id: "step-card" },
    h("div", { class: "card-head" }, h("h2", {}, "Step through the examples"),
      h("div", { class: "stepper" }, prev, slider, next)), label, body);
}

const KINKED = new Set(["relu", "leaky_relu"]);

/** How many pre-activations sit within ε of a ReLU kink, where J has no derivative. */
function kinks(trace, epsilon) {
  return trace.layers
    .filter((layer) => layer.z && KINKED.has(layer.activation))
    .reduce((count, layer) => count + layer.z.flat().filter((z) => Math.abs(z) <= epsilon).length, 0);
}

function gradientCard(trace, check) {
  const regularised = trace.lambda > 0;
  const atKinks = kinks(trace, check.epsilon);
  const rows = trace.layers.filter((l) => l.Theta).map((layer, index) => {
    const l = layer.l;
    const labels = thetaLabels(index, layer.Theta);
    const numerical = check.numerical?.[index];
    const perLayer = check.per_layer.find((p) => p.layer === l);
    return h("div", { class: "accumulate", dataset: { layer: String(l) } },
      h("h4", {}, `Θ${sup(l)}, layer ${l} → ${l + 1}: relative difference ${fmt(perLayer?.relative_difference)}`),
      regularised
        ? h("div", { class: "matrix-row" },
          matrixTable(layer.Delta, { ...labels, name: `Delta${l}`, caption: `Δ${sup(l)}` }),
          h("span", { class: "op" }, "÷ m →"),
          matrixTable(layer.D_data, { ...labels, name: `D_data${l}`, caption: "Δ/m (data)" }),
          h("span", { class: "op" }, "+"),
          matrixTable(layer.D_reg, { ...labels, name: `D_reg${l}`, caption: "(λ/m)Θ, bias column 0" }))
        : null,
      h("div", { class: "matrix-row" },
        regularised ? h("span", { class: "op" }, "=") : [
          matrixTable(layer.Delta, { ...labels, name: `Delta${l}`, caption: `Δ${sup(l)}` }),
          h("span", { class: "op" }, "÷ m =")],
        matrixTable(layer.D, { ...labels, name: `D${l}`, caption: `D${sup(l)} (backprop)` }),
        h("span", { class: "op" }, "≈"),
        numerical ? matrixTable(numerical, { ...labels, name: `numerical${l}`, caption: `numerical ∂J/∂Θ${sup(l)}` }) : null));
  });
  return h("section", { class: "card", id: "gradient-card" },
    h("div", { class: "card-head" }, h("h2", {}, "D beside the numerical gradient"),
      h("span", { class: `pill ${check.passed ? "pill-succeeded" : "pill-failed"}`, id: "check-passed" },
        check.passed ? "gradient check passed" : "gradient check failed")),
    h("p", { class: "muted small" },
      `ε = ${check.epsilon}; overall ‖num − D‖ / ‖num + D‖ = ${fmt(check.relative_difference)} over ${check.n_parameters} parameters.`),
    atKinks ? h("p", { class: "kink-note", id: "kink-note" },
      `${atKinks} ReLU pre-activation${atKinks === 1 ? " is" : "s are"} within ε of z = 0 (often exactly 0: a whole layer `
      + "switched off and zero biases). ReLU has no derivative there, so the centred difference straddles the kink "
      + "and disagrees with backprop's one-sided g′; that is a property of ReLU, not an error in the deltas. "
      + "Try another seed or other examples.") : null,
    rows);
}

/** Fill `container` with every card for one trace and its gradient check. */
export function showResults(container, trace, check) {
  replace(container, summaryCard(trace, check), explanation(), stepCard(trace), gradientCard(trace, check));
}
