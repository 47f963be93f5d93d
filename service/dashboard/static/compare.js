// The batch page's "Compare" card: parallel coordinates over what differs, which parameter
// mattered, and a table of only the parameters that differ. Fed by the batch summary the
// page already polls; importance is asked for again only when more jobs have finished.
import { h, select } from "./dom.js";
import { FINISHED } from "./format.js";
import { importancePanel } from "./importance.js";
import { parcoordsPlot, reduced } from "./parcoords.js";

const MIN_TRIALS = 3; // service/importance.py MIN_TRIALS
const REDUCES = [["last", "last value"], ["min", "minimum"], ["max", "maximum"]];

export function compareCard(path) {
  const parcoords = parcoordsPlot();
  const panel = importancePanel(path);
  const reduceSelect = select({ id: "batch-reduce", "aria-label": "Value of each curve" }, REDUCES, "last");
  const card = h("section", { class: "card", id: "batch-compare" },
    h("div", { class: "card-head" }, h("h2", {}, "Compare"),
      h("label", { class: "inline-field" }, "each job's ", reduceSelect)),
    parcoords.plot,
    h("div", { class: "compare-grid" },
      h("div", {}, h("h3", {}, "Which parameter mattered"), panel.bars),
      h("div", {}, h("h3", {}, "What differs"), panel.table)));
  let last = null;

  async function render(batch, metric, mode, metricLabel) {
    last = { batch, metric, mode, metricLabel };
    const reduce = reduceSelect.value;
    const jobs = batch.jobs || [];
    parcoords.render(jobs, metric, mode, reduce, metricLabel);
    panel.renderTable(jobs, batch.best, null);
    // The API needs 3 finished jobs with a value (else 409): wait for them here.
    const finished = jobs.filter((j) => FINISHED.has(j.status) && reduced(j, metric, reduce) != null).length;
    const importance = finished >= MIN_TRIALS ? await panel.load(metric, mode, reduce, finished) : panel.wait();
    if (last.batch !== batch || reduceSelect.value !== reduce) return; // a newer render won
    panel.renderBars(importance);
    panel.renderTable(jobs, batch.best, importance);
  }

  reduceSelect.addEventListener("change", () => {
    if (last) render(last.batch, last.metric, last.mode, last.metricLabel);
  });
  return { card, render, destroy: parcoords.destroy };
}
