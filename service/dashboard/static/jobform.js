// The "new job" form: builds a job spec from a few fields and POSTs it to /jobs.
import { api } from "./api.js";
import { field, h, select } from "./dom.js";
import { errorMessage } from "./format.js";
import { lrFinderFieldset } from "./lrfinder.js";
import { fillFromMeta, meta } from "./meta.js";

// The output activation and loss that go together (the names come from GET /meta).
const HEADS = {
  softmax: ["softmax", "cross_entropy"],
  sigmoid: ["sigmoid", "binary_cross_entropy"],
  identity: ["identity", "mse"],
};

function numberInput(name, value, extra = {}) {
  return h("input", { name, type: "number", value, step: "any", ...extra });
}

/** Parse "8, 8" into [8, 8]; an empty string is a network with no hidden layer. */
function parseLayers(text) {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((part) => Number.parseInt(part, 10));
}

/** The job spec (network, dataset, training) the shared fields describe. */
export function specFromForm(form) {
  const value = (name) => form.elements[name].value;
  const num = (name) => Number(value(name));
  const [outputActivation, loss] = HEADS[value("head")];
  const batchSize = value("batch_size").trim();
  const spec = {
    network: {
      layers: parseLayers(value("layers")).map((units) => ({ units, activation: value("activation") })),
      output: { activation: outputActivation },
      loss,
      init: { scheme: value("init") },
    },
    dataset: {
      generator: value("generator"),
      n_samples: num("n_samples"),
      noise: num("noise"),
      seed: num("data_seed"),
      validation_split: num("validation_split"),
      standardize: form.elements.standardize.checked,
    },
    training: {
      optimizer: { name: value("optimizer"), learning_rate: num("learning_rate") },
      epochs: num("epochs"),
      batch_size: batchSize ? Number(batchSize) : null,
      l2: num("l2"),
      seed: num("seed"),
      record: { grad_norms: form.elements.grad_norms.checked, activations: form.elements.activations.checked },
    },
  };
  return spec;
}

/** The dataset, network and training fieldsets shared by the job and sweep forms. */
export function specFieldsets() {
  const head = select({ name: "head" }, [
    ["softmax", "softmax + cross-entropy"],
    ["sigmoid", "sigmoid + binary cross-entropy"],
    ["identity", "identity + MSE (regression)"],
  ], "softmax");
  const generator = select({ name: "generator" }, ["spirals"], "spirals");
  fillFromMeta(generator, (names) => names.generators.map((g) => g.name));
  generator.addEventListener("change", async () => {
    const names = await meta();
    const regression = names.generators.some((g) => g.name === generator.value && g.task === "regression");
    head.value = regression ? "identity" : "softmax";
  });
  const activation = select({ name: "activation" }, ["tanh"], "tanh");
  fillFromMeta(activation, (names) => names.hidden_activations);
  const init = select({ name: "init" }, ["glorot"], "glorot");
  fillFromMeta(init, (names) => names.init_schemes);
  const optimizer = select({ name: "optimizer" }, ["adam"], "adam");
  fillFromMeta(optimizer, (names) => names.optimizers);
  return [
    h("fieldset", {}, h("legend", {}, "Dataset"),
      field("Generator", generator),
      field("Samples", numberInput("n_samples", 400, { min: 10, step: 1 })),
      field("Noise", numberInput("noise", 0.1, { min: 0 })),
      field("Data seed", numberInput("data_seed", 0, { step: 1 })),
      field("Validation split", numberInput("validation_split", 0.2, { min: 0, max: 0.9 })),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "standardize", checked: true }), "Standardize")),
    h("fieldset", {}, h("legend", {}, "Network"),
      field("Hidden layers", h("input", { name: "layers", type: "text", value: "16, 16" }), "units per layer, comma-separated"),
      field("Hidden activation", activation),
      field("Output and loss", head),
      field("Initialisation", init)),
    h("fieldset", {}, h("legend", {}, "Training"),
      field("Optimizer", optimizer),
      field("Learning rate", numberInput("learning_rate", 0.01, { min: 0 })),
      field("Epochs", numberInput("epochs", 300, { min: 1, step: 1 })),
      field("Batch size", h("input", { name: "batch_size", type: "number", min: 1, step: 1, placeholder: "full batch" })),
      field("L2 (λ)", numberInput("l2", 0, { min: 0 })),
      field("Seed", numberInput("seed", 0, { step: 1 })),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "grad_norms", checked: true }), "Record gradient norms"),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "activations", checked: true }), "Record activations")),
  ];
}

/**
 * A collapsible card holding `fieldsets` and a submit button. On submit, `buildBody(form)`
 * makes the request body, it is POSTed to `path`, and `onCreated(answer)` runs after a 202.
 */
export function formCard({ id, title, lead, fieldsets, submitLabel, path, buildBody, onCreated }) {
  const errorBox = h("pre", { class: "error-box", hidden: true });
  const submit = h("button", { class: "button primary", type: "submit" }, submitLabel);
  const form = h("form", { class: "job-form", id }, lead ? h("div", { class: "form-lead" }, lead) : null,
    h("div", { class: "form-grid" }, fieldsets), errorBox, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    submit.disabled = true;
    try {
      onCreated(await api.post(path, buildBody(form)));
    } catch (error) {
      errorBox.textContent = errorMessage(error);
      errorBox.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return h("details", { class: "card form-card" },
    h("summary", { id: `${id}-toggle` }, h("span", { class: "summary-title" }, title)), form);
}

/** The "new job" card; `onCreated(job)` runs after a 202. */
export function jobForm(onCreated) {
  return formCard({
    id: "new-job",
    title: "New training job",
    submitLabel: "Submit job",
    path: "/jobs",
    lead: field("Name", h("input", { name: "name", type: "text", maxlength: "200", placeholder: "optional, e.g. spirals 16x16 adam" })),
    fieldsets: [...specFieldsets(), lrFinderFieldset(specFromForm)],
    buildBody: (form) => {
      const name = form.elements.name.value.trim();
      return name ? { name, ...specFromForm(form) } : specFromForm(form);
    },
    onCreated,
  });
}
