// Numeric tables for the explainer: every cell keeps its exact value in data-value.
import { h } from "./dom.js";

const SUPERSCRIPT = { 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };

/** Ng's layer superscript: sup(2) is "⁽²⁾". */
export function sup(n) {
  return `⁽${String(n).replace(/\d/g, (d) => SUPERSCRIPT[d])}⁾`;
}

/** Four significant digits, without trailing noise. */
export function fmt(value) {
  if (value == null) return "—";
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs < 1e-4 || abs >= 1e5) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

function shade(value, scale) {
  if (!scale || value == null) return "";
  const t = Math.min(1, Math.abs(value) / scale);
  const hue = value >= 0 ? "37, 99, 235" : "234, 88, 12";
  return `background-color: rgba(${hue}, ${(0.08 + 0.42 * t).toFixed(3)})`;
}

function maxAbs(rows) {
  return Math.max(1e-12, ...rows.flat().map((v) => Math.abs(v ?? 0)));
}

/**
 * A matrix as a table. `rowLabels` and `colLabels` name the axes (Θ layout: rows = units of
 * layer l+1, column 0 = bias). `name` goes in data-matrix so tests can find it.
 */
export function matrixTable(rows, { name, rowLabels, colLabels, caption } = {}) {
  const scale = maxAbs(rows);
  return h("table", { class: "matrix", dataset: { matrix: name || "" } },
    caption ? h("caption", {}, caption) : null,
    colLabels ? h("thead", {}, h("tr", {}, h("th", {}), colLabels.map((c) => h("th", {}, c)))) : null,
    h("tbody", {}, rows.map((row, i) => h("tr", {},
      rowLabels ? h("th", {}, rowLabels[i]) : null,
      row.map((value, j) => h("td", {
        class: "num", style: shade(value, scale),
        dataset: { value: String(value), row: String(i), col: String(j) },
      }, fmt(value)))))));
}

/** A vector as a one-column table. */
export function vectorTable(values, { name, labels, caption } = {}) {
  return matrixTable(values.map((v) => [v]), { name, rowLabels: labels, caption });
}

export function addInto(sum, matrix) {
  return sum ? sum.map((row, i) => row.map((v, j) => v + matrix[i][j])) : matrix.map((row) => [...row]);
}
