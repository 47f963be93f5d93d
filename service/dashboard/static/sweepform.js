// The "new sweep" form: a base job spec plus up to three varied paths, POSTed as a grid.
import { field, h, select } from "./dom.js";
import { formCard, specFieldsets, specFromForm } from "./jobform.js";

const VARIABLE_PATHS = [
  ["", "— none —"],
  ["training.optimizer.learning_rate", "learning rate"],
  ["network.layers.0.units", "units of hidden layer 1"],
  ["network.layers.0.activation", "activation of hidden layer 1"],
  ["training.optimizer.name", "optimizer"],
  ["training.batch_size", "batch size"],
  ["training.l2", "L2 (λ)"],
  ["training.seed", "training seed"],
  ["dataset.noise", "dataset noise"],
];
const ROWS = 3;

/** "0.01, 0.1, adam" → [0.01, 0.1, "adam"]. */
function parseValues(text) {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => (Number.isNaN(Number(part)) ? part : Number(part)));
}

function varyFieldset() {
  const rows = [];
  for (let i = 0; i < ROWS; i += 1) {
    rows.push(h("div", { class: "inline-fields" },
      field(`Parameter ${i + 1}`, select({ name: `vary_path_${i}` }, VARIABLE_PATHS, i === 0 ? VARIABLE_PATHS[1][0] : "")),
      field("Values", h("input", { name: `vary_values_${i}`, type: "text",
        value: i === 0 ? "0.001, 0.01, 0.1" : "", placeholder: "comma-separated" }))));
  }
  return h("fieldset", { class: "wide" }, h("legend", {}, "Sweep"),
    field("Name", h("input", { name: "name", type: "text", maxlength: "200", value: "sweep" })),
    rows, h("p", { class: "field-hint" }, "Every combination of the values becomes one job (a grid)."));
}

function batchBody(form) {
  const grid = {};
  for (let i = 0; i < ROWS; i += 1) {
    const path = form.elements[`vary_path_${i}`].value;
    const values = parseValues(form.elements[`vary_values_${i}`].value);
    if (path && values.length) grid[path] = values;
  }
  return { name: form.elements.name.value.trim() || "sweep", base: specFromForm(form), grid };
}

/** The "new sweep" card; `onCreated(batch)` runs after a 202. */
export function sweepForm(onCreated) {
  return formCard({
    id: "new-sweep",
    title: "New sweep",
    submitLabel: "Submit sweep",
    path: "/batches",
    fieldsets: [varyFieldset(), ...specFieldsets()],
    buildBody: batchBody,
    onCreated,
  });
}
