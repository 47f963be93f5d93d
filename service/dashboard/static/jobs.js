// #/jobs: the live job list with status and batch filters, and the new-job form.
import { api } from "./api.js";
import { h, replace, select } from "./dom.js";
import { accuracyCell, ago, duration, jobName, number, progressBar, shortId, statusPill } from "./format.js";
import { jobForm } from "./jobform.js";
import { filterBox, overlayPanel, summaryCells, summaryHeaders } from "./jobsearch.js";
import { fillFromMeta } from "./meta.js";
import { CHANGED, DONE, errorsInto, Poller, UNCHANGED } from "./poll.js";
import { quotaStrip, refreshQuota } from "./quota.js";
import { link } from "./router.js";

const PAGE = 50;
// The list shows no spec: leave it out of every item (GET /jobs?spec=false).
const LIGHT = { spec: "false" };
const ACTIVE = new Set(["queued", "running", "cancelling"]);

function jobRow(job, overlay) {
  const progress = job.progress || {};
  const metrics = job.metrics || {};
  const active = job.status === "running" || job.status === "cancelling";
  return h(
    "tr",
    { dataset: { jobId: job.id, status: job.status, batchId: job.batch_id || "" } },
    h("td", {}, overlay.checkbox(job)),
    h("td", {}, h("a", { class: "job-link", href: `#/jobs/${encodeURIComponent(job.id)}` }, jobName(job)),
      h("div", { class: "muted small" }, h("span", { class: "mono" }, shortId(job.id)), ` · ${ago(job.created_at)}`)),
    h("td", {}, statusPill(job.status)),
    h("td", { class: "progress-cell" }, progressBar(progress.fraction, job.status),
      h("div", { class: "muted small" }, `${progress.epoch ?? 0} / ${progress.epochs ?? "?"} epochs`)),
    h("td", { class: "num" }, active ? duration(progress.eta_seconds) : "—"),
    h("td", { class: "num" }, number(metrics.train_loss)),
    h("td", { class: "num" }, number(metrics.val_loss)),
    h("td", { class: "num" }, accuracyCell(metrics)),
    summaryCells(job),
    h("td", {}, job.batch_id
      ? h("a", { href: `#/batches/${encodeURIComponent(job.batch_id)}`, class: "mono small" }, shortId(job.batch_id))
      : h("span", { class: "muted" }, "—")),
  );
}

function jobsTable(items, overlay, orderBy, order) {
  if (!items.length) return h("p", { class: "empty" }, "No jobs match. Submit one with the form above.");
  const head = (titles) => titles.map((t) => h("th", {}, t));
  return h("table", { class: "table", id: "jobs-table" },
    h("thead", {}, h("tr", {}, head(["", "Job", "Status", "Progress", "ETA", "Train loss", "Val loss", "Accuracy (val, else train)"]),
      summaryHeaders(orderBy, order), head(["Batch"]))),
    h("tbody", {}, items.map((job) => jobRow(job, overlay))));
}

/** Offer the tenant's recent batches by name in the batch filter. */
async function fillBatchOptions(selectElement, current) {
  try {
    const page = await api.get("/batches", { limit: 100 });
    const options = [["", "all batches"], ...page.items.map((b) => [b.id, `${b.name || "batch"} · ${shortId(b.id)}`])];
    if (current && !page.items.some((b) => b.id === current)) options.push([current, `batch ${shortId(current)}`]);
    selectElement.replaceChildren(...options.map(([value, label]) =>
      h("option", { value, selected: value === current }, label)));
  } catch {
    // The filter still works with the current value; the list is a convenience.
  }
}

export function renderJobs(root, route) {
  const filters = { status: route.query.status || "", batch_id: route.query.batch_id || "",
    filter: route.query.filter || "", order_by: route.query.order_by || "" };
  const status = select({ id: "status-filter", "aria-label": "Status" },
    [["", "all statuses"], ...(filters.status ? [filters.status] : [])], filters.status);
  fillFromMeta(status, (names) => [["", "all statuses"], ...names.statuses]);
  const batch = select({ id: "batch-filter", "aria-label": "Batch" }, [["", "all batches"],
    ...(filters.batch_id ? [[filters.batch_id, `batch ${shortId(filters.batch_id)}`]] : [])], filters.batch_id);
  fillBatchOptions(batch, filters.batch_id);
  const go = (changes) => {
    window.location.hash = link("jobs", { ...filters, ...changes });
  };
  const apply = () => go({ status: status.value, batch_id: batch.value });
  const search = filterBox(filters.filter, (text) => go({ filter: text }));
  const overlay = overlayPanel();
  const table = (rows) => jobsTable(rows, overlay, filters.order_by, (orderBy) => go({ order_by: orderBy }));
  status.addEventListener("change", apply);
  batch.addEventListener("change", apply);

  const listBox = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const errorBox = h("p", { class: "error-line", hidden: true });
  const more = h("button", { class: "button ghost", type: "button", hidden: true }, "Load more");
  let etag = null;
  let items = [];
  let extra = [];
  let extraCursor = null;
  const quota = quotaStrip();

  replace(root,
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"),
      h("div", { class: "filters" }, status, batch)),
    quota,
    jobForm((job) => { window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`; }),
    overlay.card,
    h("section", { class: "card" }, h("div", { class: "card-head" }, search, overlay.tools),
      errorBox, listBox, h("div", { class: "actions" }, more)));

  // Polls send If-None-Match: an unchanged first page is a bodiless 304. While nothing on
  // the page runs or waits, polling stops; it starts again when the tab or window comes back.
  async function tick() {
    const answer = await api.getConditional("/jobs", { ...filters, ...LIGHT, limit: PAGE }, etag);
    if (!answer.notModified) {
      etag = answer.etag;
      items = answer.data.items;
      if (!extra.length) extraCursor = answer.data.next_cursor;
      replace(listBox, table([...items, ...extra]));
      refreshQuota(quota);  // usage moves when jobs do
      more.hidden = !extraCursor;
    }
    if (![...items, ...extra].some((job) => ACTIVE.has(job.status))) return DONE;
    return answer.notModified ? UNCHANGED : CHANGED;
  }

  more.addEventListener("click", async () => {
    const page = await api.get("/jobs", { ...filters, ...LIGHT, limit: PAGE, cursor: extraCursor });
    extra = [...extra, ...page.items];
    extraCursor = page.next_cursor;
    replace(listBox, table([...items, ...extra]));
    more.hidden = !extraCursor;
  });

  const poller = new Poller(tick, {
    minDelay: 1500,
    maxDelay: 15000,
    onError: errorsInto(errorBox, "Could not load jobs: "),
  }).start();
  const wake = () => {
    if (!poller.running && document.visibilityState === "visible") poller.start();
  };
  document.addEventListener("visibilitychange", wake);
  window.addEventListener("focus", wake);
  return () => {
    poller.stop();
    overlay.destroy();
    document.removeEventListener("visibilitychange", wake);
    window.removeEventListener("focus", wake);
  };
}
