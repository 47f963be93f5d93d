// #/explain: choose a tiny network, its weights (or a seed) and a few examples; the page
// asks POST /backprop/trace (per_example) and POST /backprop/gradient-check with the same
// body and explaincards.js draws both answers in Ng's notation.
import { api } from "./api.js";
import { field, h, replace, select } from "./dom.js";
import { showDelta } from "./deltachart.js";
import { showResults } from "./explaincards.js";
import { errorMessage } from "./format.js";
import { fillFromMeta } from "./meta.js";

const HEADS = {
  sigmoid: ["sigmoid", "binary_cross_entropy", "sigmoid + binary cross-entropy (Ng)"],
  softmax: ["softmax", "cross_entropy", "softmax + cross-entropy"],
  identity: ["identity", "mse", "identity + MSE"],
};
const PRESETS = {
  ng: { label: "Ng's lecture: 2-3-2, sigmoid units, binary cross-entropy", layers: "3", activation: "sigmoid",
    head: "sigmoid", scheme: "ng", seed: 1, l2: 0, examples: "0.5, -1.2 | 1\n1.0, 0.3 | 0\n-0.7, 0.8 | 1" },
  softmax: { label: "Three classes: 2-4-3, tanh, softmax + cross-entropy", layers: "4", activation: "tanh",
    head: "softmax", scheme: "glorot", seed: 3, l2: 0, examples: "1, 0 | a\n0, 1 | b\n-1, -1 | c\n0.5, 0.5 | a" },
  // Seed 2 keeps every ReLU unit away from its kink at z = 0 for these examples.
  deep: { label: "Two hidden layers: 2-3-2-2, relu, with λ = 1", layers: "3, 2", activation: "relu",
    head: "sigmoid", scheme: "he", seed: 2, l2: 1, examples: "0.2, 0.9 | 0\n-0.4, 0.1 | 1\n0.7, -0.5 | 1" },
  regression: { label: "Regression: 1-3-1, tanh, identity + MSE", layers: "3", activation: "tanh",
    head: "identity", scheme: "glorot", seed: 2, l2: 0, examples: "-1 | -0.84\n0 | 0\n0.5 | 0.48\n1 | 0.84" },
  // Five sigmoid layers: δ loses most of itself at each one (the vanishing-gradient case).
  vanishing: { label: "Deep sigmoid: 2-4-4-4-4-4-2, δ vanishes on its way back", layers: "4, 4, 4, 4, 4",
    activation: "sigmoid", head: "sigmoid", scheme: "glorot", seed: 0, l2: 0,
    examples: "0.5, -1.2 | 1\n1.0, 0.3 | 0\n-0.7, 0.8 | 1\n0.2, 0.9 | 0" },
};

/**
 * Parse lines "x1, x2, ... | y" into X and y: a single target is a label (a number when it
 * parses as one) or a real; several numbers ("0 1") make a row of a target matrix Y.
 */
export function parseExamples(text) {
  const X = [];
  const y = [];
  text.split("\n").map((line) => line.trim()).filter(Boolean).forEach((line, index) => {
    const [inputs, target] = line.split("|");
    if (target === undefined) throw new Error(`line ${index + 1}: write "x1, x2 | y"`);
    const row = inputs.split(/[\s,]+/).filter(Boolean).map(Number);
    if (row.some(Number.isNaN)) throw new Error(`line ${index + 1}: inputs must be numbers`);
    X.push(row);
    const label = target.trim();
    const tokens = label.split(/[\s,]+/).filter(Boolean);
    if (tokens.length > 1) y.push(tokens.map(Number));
    else y.push(label !== "" && !Number.isNaN(Number(label)) ? Number(label) : label);
  });
  return { X, y };
}

export function renderExplainer(root, route) {
  // #/explain?preset=vanishing opens on a preset (a vanishing-gradients finding links here).
  const startKey = Object.hasOwn(PRESETS, route?.query?.preset ?? "") ? route.query.preset : "ng";
  const start = PRESETS[startKey];
  const preset = select({ name: "preset", id: "preset", "aria-label": "Start from" },
    Object.entries(PRESETS).map(([k, p]) => [k, p.label]), startKey);
  const hidden = h("input", { name: "layers", type: "text", value: start.layers });
  // The presets' own names until GET /meta answers, so choosing a preset always works.
  const presetNames = (key) => [...new Set(Object.values(PRESETS).map((p) => p[key]))];
  const activation = select({ name: "activation" }, presetNames("activation"), start.activation);
  fillFromMeta(activation, (names) => names.hidden_activations);
  const head = select({ name: "head" }, Object.entries(HEADS).map(([k, v]) => [k, v[2]]), start.head);
  const mode = select({ name: "weights_mode" }, [["seed", "drawn from a seed"], ["theta", "explicit Θ (JSON)"]], "seed");
  const scheme = select({ name: "init" }, presetNames("scheme"), start.scheme);
  fillFromMeta(scheme, (names) => names.init_schemes);
  const seed = h("input", { name: "seed", type: "number", value: start.seed, min: 0, step: 1 });
  const thetaBox = h("textarea", { name: "theta", rows: 4, spellcheck: "false", class: "mono",
    placeholder: "[[[b, w1, w2], …], …]  — filled in after the first run" });
  const examples = h("textarea", { name: "examples", rows: 4, spellcheck: "false", class: "mono", value: start.examples });
  const lambda = h("input", { name: "l2", type: "number", value: start.l2, min: 0, step: "any" });
  const runButton = h("button", { class: "button primary", type: "submit", id: "run-trace" }, "Run backprop");
  const errorBox = h("pre", { class: "error-box", hidden: true });
  const results = h("div", { id: "explain-results" });
  const seedFields = h("div", { class: "inline-fields" }, field("Init scheme", scheme), field("Seed", seed));
  const thetaField = field("Θ per layer (Ng layout: rows = next layer's units, column 0 = bias)", thetaBox);
  const syncMode = () => {
    seedFields.hidden = mode.value !== "seed";
    thetaField.hidden = mode.value !== "theta";
  };
  mode.addEventListener("change", syncMode);
  syncMode();
  preset.addEventListener("change", () => {
    const chosen = PRESETS[preset.value];
    hidden.value = chosen.layers;
    activation.value = chosen.activation;
    head.value = chosen.head;
    scheme.value = chosen.scheme;
    seed.value = String(chosen.seed);
    lambda.value = String(chosen.l2);
    examples.value = chosen.examples;
    mode.value = "seed";
    syncMode();
    form.requestSubmit();
  });

  const form = h("form", { class: "explain-form", id: "explain-form" },
    h("div", { class: "form-grid" },
      h("fieldset", {}, h("legend", {}, "Network"),
        field("Hidden layers", hidden, "units per layer, e.g. 3 or 3, 2 (input and output sizes come from the examples)"),
        field("Hidden activation", activation),
        field("Output and loss", head)),
      h("fieldset", {}, h("legend", {}, "Weights"), field("Weights", mode), seedFields, thetaField),
      h("fieldset", { class: "wide" }, h("legend", {}, "Examples"),
        field("One per line: inputs | target", examples, "targets are class labels (one-hot over the sorted labels), or reals for MSE"),
        field("λ (L2)", lambda))),
    errorBox,
    h("div", { class: "actions" }, runButton));

  replace(root,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Backprop explainer"),
      h("p", { class: "muted" }, "a, z and δ of every layer for each example, Δ accumulating, and D against the numerical gradient.")),
      h("label", { class: "inline-field" }, "Start from ", preset)),
    h("section", { class: "card" }, form),
    results);

  let latestRun = 0;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Only the latest run may draw: an older answer arriving late is dropped.
    latestRun += 1;
    const run = latestRun;
    errorBox.hidden = true;
    runButton.disabled = true;
    try {
      const { X, y } = parseExamples(examples.value);
      const [outputActivation, loss] = HEADS[head.value];
      const body = {
        network: {
          layers: hidden.value.split(/[\s,]+/).filter(Boolean).map((u) => ({ units: Number(u), activation: activation.value })),
          output: { activation: outputActivation },
          loss,
          init: { scheme: scheme.value },
        },
        seed: Number(seed.value),
        X,
        y,
        l2: Number(lambda.value),
      };
      if (mode.value === "theta") body.weights = { format: "theta", layers: JSON.parse(thetaBox.value) };
      const [trace, check] = await Promise.all([
        api.post("/backprop/trace", { ...body, per_example: true }),
        api.post("/backprop/gradient-check", { ...body, include_gradients: true }),
      ]);
      if (run !== latestRun) return;
      thetaBox.value = JSON.stringify(trace.weights.theta);
      showResults(results, trace, check);
      showDelta(results, trace.delta_norms);
    } catch (error) {
      errorBox.textContent = errorMessage(error);
      errorBox.hidden = false;
    } finally {
      runButton.disabled = false;
    }
  });
  form.requestSubmit();
}
