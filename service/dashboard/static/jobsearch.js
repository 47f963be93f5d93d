// The jobs page's search (GET /jobs?filter=&order_by=, grammar in docs/compare.md), its
// sortable summary columns, and an overlay of the curves of a few selected jobs.
import { api } from "./api.js";
import { draw, PALETTE, plotlyText, purge } from "./charts.js";
import { h, replace, select } from "./dom.js";
import { errorMessage, jobName, number, percent } from "./format.js";

// Summary columns: [order key, header, format]; a click orders the list by the key.
export const SUMMARY_COLUMNS = [
  ["summary.train_loss.min", "Best train loss", number],
  ["summary.val_loss.min", "Best val loss", number],
  ["summary.val_accuracy.max", "Best val acc", percent],
];
const BEST_FIRST = { min: "asc", max: "desc" };

function summaryValue(job, key) {
  const [, metric, stat] = key.split(".");
  return job.summary?.[metric]?.[stat];
}

/** The filter box: the expression as typed; Enter (or the button) applies it. */
export function filterBox(current, apply) {
  const input = h("input", {
    id: "jobs-filter", type: "search", class: "filter-input", spellcheck: "false",
    placeholder: "summary.val_loss.min < 0.2 and spec.training.optimizer.name = 'adam'",
    "aria-label": "Filter", value: current || "",
  });
  const form = h("form", { class: "filter-form", onsubmit: (event) => {
    event.preventDefault();
    apply(input.value.trim());
  } }, input, h("button", { class: "button ghost", type: "submit" }, "Filter"));
  return form;
}

/** The summary columns' header cells: a click orders by the column (best first, then the
 * other way); the current ordering is marked. */
export function summaryHeaders(orderBy, order) {
  const [key, direction] = (orderBy || "").split(" ");
  return SUMMARY_COLUMNS.map(([column, label]) => {
    const sorted = key === column;
    const best = BEST_FIRST[column.split(".")[2]];
    const next = sorted && (direction || "asc") === best ? (best === "asc" ? "desc" : "asc") : best;
    return h("th", {
      class: `num sortable${sorted ? " sorted" : ""}`, dataset: { order: column },
      "aria-sort": sorted ? ((direction || "asc") === "asc" ? "ascending" : "descending") : "none",
      onclick: () => order(`${column} ${next}`),
    }, label, sorted ? ((direction || "asc") === "asc" ? " ▲" : " ▼") : "");
  });
}

export function summaryCells(job) {
  return SUMMARY_COLUMNS.map(([key, , format]) => h("td", { class: "num" }, format(summaryValue(job, key))));
}

/** Curves of the selected jobs overlaid on one chart (one metric at a time). */
export function overlayPanel() {
  const selected = new Map(); // id -> job
  const metric = select({ id: "overlay-metric", "aria-label": "Overlay metric" },
    [["val_loss", "validation loss"], ["train_loss", "training loss"],
      ["val_accuracy", "validation accuracy"], ["train_accuracy", "training accuracy"]], "val_loss");
  const plot = h("div", { class: "chart", id: "jobs-overlay", dataset: { traces: "0" } });
  const status = h("span", { class: "muted small", id: "overlay-count" });
  const button = h("button", { class: "button primary", type: "button", id: "overlay-button", disabled: true },
    "Overlay selected");
  const card = h("section", { class: "card", id: "overlay-card", hidden: true },
    h("div", { class: "card-head" }, h("h2", {}, "Selected jobs"), h("label", { class: "inline-field" }, metric)),
    plot);
  const curves = new Map(); // id -> points
  let shown = false;

  function update() {
    status.textContent = selected.size ? `${selected.size} selected` : "select jobs to compare their curves";
    button.disabled = selected.size === 0;
  }

  async function overlay() {
    shown = true;
    card.hidden = false;
    const fields = "train_loss,val_loss,train_accuracy,val_accuracy";
    await Promise.all([...selected.keys()].filter((id) => !curves.has(id)).map(async (id) => {
      const answer = await api.get(`/jobs/${encodeURIComponent(id)}/curve`, { max_points: 500, fields });
      curves.set(id, answer.points);
    }));
    const key = metric.value;
    const traces = [...selected.values()].map((job, i) => {
      const points = (curves.get(job.id) || []).filter((p) => typeof p[key] === "number");
      return { type: "scatter", mode: "lines", name: plotlyText(jobName(job)), x: points.map((p) => p.epoch),
        y: points.map((p) => p[key]), line: { color: PALETTE[i % PALETTE.length], width: 2 } };
    });
    plot.dataset.traces = String(traces.length);
    plot.dataset.jobs = [...selected.keys()].join(",");
    if (!traces.length) return purge(plot);
    return draw(plot, traces, { xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: key.replace("_", " ") }, type: key.includes("loss") ? "log" : "linear" },
      hovermode: "closest" });
  }

  const run = () => overlay().catch((error) => {
    replace(plot, h("p", { class: "error-line" }, errorMessage(error)));
  });
  button.addEventListener("click", run);
  metric.addEventListener("change", () => shown && run());

  function checkbox(job) {
    return h("input", { type: "checkbox", class: "overlay-pick", "aria-label": `Select ${jobName(job)}`,
      checked: selected.has(job.id), onchange: (event) => {
        if (event.target.checked) selected.set(job.id, job);
        else selected.delete(job.id);
        update();
      } });
  }

  update();
  return { card, tools: h("div", { class: "actions" }, status, button), checkbox, destroy: () => purge(plot) };
}
