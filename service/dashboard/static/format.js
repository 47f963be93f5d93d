// Small formatters shared by the views. They return strings or text-only nodes.
import { h } from "./dom.js";

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export function statusPill(status) {
  return h("span", { class: `pill pill-${status}`, dataset: { status } }, status);
}

export function progressBar(fraction, status) {
  const percent = Math.max(0, Math.min(1, Number(fraction) || 0)) * 100;
  return h(
    "div",
    { class: `progress progress-${status || "running"}`, role: "progressbar",
      "aria-valuenow": percent.toFixed(0), "aria-valuemin": "0", "aria-valuemax": "100" },
    h("div", { class: "progress-fill", style: `width: ${percent.toFixed(1)}%` }),
  );
}

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function number(value, digits = 4) {
  if (value == null || value === "") return "—";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) {
    return value.toExponential(digits - 1);
  }
  return value.toFixed(digits);
}

export function percent(value) {
  return value == null ? "—" : `${(value * 100).toFixed(1)}%`;
}

export function dateTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** "just now", "5 min ago", "3 h ago", else the date. */
export function ago(iso, now = Date.now()) {
  const time = new Date(iso).getTime();
  if (!iso || Number.isNaN(time)) return "";
  const seconds = Math.max(0, (now - time) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}

/** A job's display name: its own, or its short id. */
export function jobName(job) {
  return job.name || `job ${shortId(job.id)}`;
}

/** Read a dotted path ("training.optimizer.learning_rate") out of a nested object. */
export function pathValue(object, path) {
  return path.split(".").reduce((node, part) => (node == null ? undefined : node[part]), object);
}

export function errorMessage(error) {
  if (!error) return "";
  const lines = [error.message || String(error)];
  if (error.fieldErrors?.length) lines.push(...error.fieldErrors);
  return lines.join("\n");
}

/** "3 running · 2 succeeded": a batch's non-zero counts by status. */
export function countsText(counts) {
  return Object.entries(counts || {})
    .filter(([, n]) => n)
    .map(([status, n]) => `${n} ${status}`)
    .join(" · ") || "no jobs";
}

/** A batch's finished fraction, from its progress block. */
export function batchProgress(batch) {
  const p = batch.progress;
  return typeof p === "number" ? p : p?.fraction ?? 0;
}

/** The colour of a batch's bar: running until every job has finished, then what they
 * ended as — succeeded, cancelled or failed when all did alike, else partial. */
export function batchOutcome(batch) {
  if (batchProgress(batch) < 1) return "running";
  const counts = batch.counts || {};
  const ended = ["succeeded", "cancelled", "failed"].filter((s) => (counts[s] || 0) > 0);
  if (ended.length === 1) return ended[0];
  return ended.length ? "partial" : "running";
}

/** An accuracy cell that says which one it is: validation, else training. */
export function accuracyCell(metrics) {
  const validation = metrics?.val_accuracy != null;
  const value = validation ? metrics.val_accuracy : metrics?.train_accuracy;
  if (value == null) return "—";
  const which = validation ? "val" : "train";
  return [percent(value), " ", h("span", { class: "muted small", dataset: { accuracy: which },
    title: validation ? "validation accuracy" : "training accuracy (no validation set)" }, which)];
}
