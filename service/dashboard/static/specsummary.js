// A job spec in a few readable lines (the raw JSON stays one click away).
import { h } from "./dom.js";

function network(spec) {
  const hidden = (spec.layers || []).map((layer) => `${layer.units} ${layer.activation}`);
  const init = spec.init?.scheme || (spec.init?.weights ? `explicit ${spec.init.weights.format}` : "—");
  return `${[...hidden, `${spec.output?.activation} output`].join(" → ")} · ${spec.loss} · init ${init}`;
}

function dataset(spec) {
  let source;
  if (spec.generator) source = `${spec.generator} (${spec.n_samples} samples, noise ${spec.noise}, seed ${spec.seed})`;
  else if (Array.isArray(spec.X)) source = `inline ${spec.X.length} × ${spec.X[0]?.length ?? 0}`;
  else if (spec.inline) source = `inline, stored once as dataset ${spec.id}`;
  else source = `stored ${spec.id}`;
  const options = [];
  if (spec.validation_split) options.push(`${Math.round(spec.validation_split * 100)}% validation`);
  if (spec.standardize) options.push("standardized");
  return [source, ...options].join(" · ");
}

function training(spec) {
  const optimizer = spec.optimizer || {};
  const parts = [
    `${optimizer.name} lr ${optimizer.learning_rate}`,
    `${spec.epochs} epochs`,
    spec.batch_size ? `batch ${spec.batch_size}` : "full batch",
  ];
  if (spec.l2) parts.push(`λ ${spec.l2}`);
  if (spec.lr_schedule && spec.lr_schedule.name !== "constant") parts.push(`${spec.lr_schedule.name} schedule`);
  if (spec.early_stopping) parts.push(`early stopping (patience ${spec.early_stopping.patience})`);
  parts.push(`seed ${spec.seed}`);
  return parts.join(" · ");
}

export function specSummary(spec) {
  const row = (label, text) => h("div", { class: "spec-row" }, h("span", { class: "meta-label" }, label), h("span", {}, text));
  return h("div", { class: "spec-summary" },
    row("Network", network(spec.network || {})),
    row("Dataset", dataset(spec.dataset || {})),
    row("Training", training(spec.training || {})));
}
