// Which varied parameter mattered (GET /batches/{id}/importance) as bars, and a table of
// only the parameters whose values differ: what was tried, and the best job's value.
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { errorMessage } from "./format.js";
import { axisLabel, differing } from "./parcoords.js";

function formatValue(value) {
  if (typeof value === "number") return String(+value.toPrecision(4));
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The distinct values in order; many numbers as their range. */
function tried(values, max = 8) {
  const seen = [...new Set(values.map((v) => JSON.stringify(v ?? null)))].map((v) => JSON.parse(v));
  const numbers = seen.every((v) => typeof v === "number");
  seen.sort((a, b) => (numbers ? a - b : String(a).localeCompare(String(b))));
  if (seen.length <= max) return seen.map(formatValue).join(", ");
  if (numbers) return `${formatValue(seen[0])} … ${formatValue(seen[seen.length - 1])} (${seen.length} values)`;
  return `${seen.slice(0, max).map(formatValue).join(", ")}, … (${seen.length} values)`;
}

export function importancePanel(path) {
  const bars = h("div", { class: "importance", id: "batch-importance", dataset: { state: "idle" } });
  const table = h("div", { class: "table-wrap", id: "batch-differs" });
  let asked = null; // what the shown importance was asked for
  let shown = null;

  async function load(metric, mode, reduce, finished) {
    const key = `${metric}/${mode}/${reduce}/${finished}`;
    if (key === asked) return shown;
    asked = key;
    bars.dataset.state = "loading";
    try {
      shown = await api.get(`${path}/importance`, { metric, mode, reduce });
      bars.dataset.state = "ready";
    } catch (error) {
      shown = null;
      bars.dataset.state = error.status === 409 ? "waiting" : "error";
      replace(bars, h("p", { class: "muted small" }, error.status === 409
        ? "Importance needs at least 3 finished jobs with a value." : errorMessage(error)));
    }
    return shown;
  }

  /** Not enough finished jobs yet: say so, ask nothing. */
  function wait() {
    asked = null;
    shown = null;
    bars.dataset.state = "waiting";
    replace(bars, h("p", { class: "muted small" }, "Importance needs at least 3 finished jobs with a value."));
    return null;
  }

  function renderBars(result) {
    if (!result) return;
    const rows = result.params.map((p) => h("div", { class: "importance-row", dataset: { param: p.name } },
      h("span", { class: "importance-name", title: p.name }, axisLabel(p.name)),
      h("span", { class: "importance-track" },
        h("span", { class: "importance-bar", style: `width: ${(100 * p.importance).toFixed(1)}%` })),
      h("span", { class: "importance-value num" }, `${(100 * p.importance).toFixed(0)}%`)));
    const notes = [
      `${result.n_trials} finished jobs; parameters alone explain ${(100 * result.explained).toFixed(0)}% of the variation in rank`,
      ...result.warnings,
    ];
    replace(bars, result.params.length ? rows : h("p", { class: "muted small" }, "Nothing varies in this batch."),
      h("p", { class: "muted small", id: "batch-importance-notes" }, notes.join(" · "),
        ". First-order only: effects that need two parameters together, and parameters a search moved together, are not told apart (docs/compare.md)."));
  }

  function renderTable(jobs, best, importance) {
    const params = differing(jobs);
    const share = new Map((importance?.params || []).map((p) => [p.name, p.importance]));
    const bestJob = jobs.find((j) => j.id === best?.id);
    const rows = Object.entries(params)
      .sort(([a], [b]) => (share.get(b) ?? -1) - (share.get(a) ?? -1) || a.localeCompare(b))
      .map(([name, values]) => h("tr", { dataset: { param: name } },
        h("td", { class: "mono small", title: name }, name),
        h("td", {}, tried(values)),
        h("td", {}, bestJob ? formatValue((bestJob.params || {})[name]) : "—"),
        h("td", { class: "num" }, share.has(name) ? `${(100 * share.get(name)).toFixed(0)}%` : "—")));
    replace(table, rows.length
      ? h("table", { class: "table" }, h("thead", {}, h("tr", {},
        h("th", {}, "Parameter"), h("th", {}, "Values tried"), h("th", {}, "Best job"), h("th", { class: "num" }, "Importance"))),
      h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No parameter differs between these jobs."));
  }

  return { bars, table, load, wait, renderBars, renderTable };
}
