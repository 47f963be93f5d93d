// #/batches: the tenant's sweeps with their progress, and the form to start one.
import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { batchOutcome, batchProgress, countsText, dateTime, progressBar, shortId } from "./format.js";
import { CHANGED, errorsInto, Poller, UNCHANGED } from "./poll.js";
import { sweepForm } from "./sweepform.js";

export function renderBatches(root) {
  const box = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const errorBox = h("p", { class: "error-line", hidden: true });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Batches")),
    sweepForm((batch) => { window.location.hash = `#/batches/${encodeURIComponent(batch.id)}`; }),
    h("section", { class: "card" }, errorBox, box));
  let last = "";
  const poller = new Poller(async () => {
    const page = await api.get("/batches", { limit: 50 });
    const body = JSON.stringify(page);
    if (body === last) return UNCHANGED;
    last = body;
    const items = page.items || [];
    replace(box, items.length
      ? h("table", { class: "table", id: "batches-table" },
        h("thead", {}, h("tr", {}, ["Batch", "Jobs", "Progress", "Created"].map((t) => h("th", {}, t)))),
        h("tbody", {}, items.map((b) => h("tr", { dataset: { batchId: b.id } },
          h("td", {}, h("a", { href: `#/batches/${encodeURIComponent(b.id)}` }, b.name || `batch ${shortId(b.id)}`),
            h("div", { class: "muted small mono" }, shortId(b.id))),
          h("td", {}, countsText(b.counts)),
          h("td", { class: "progress-cell" }, progressBar(batchProgress(b), batchOutcome(b))),
          h("td", {}, dateTime(b.created_at))))))
      : h("p", { class: "empty" }, "No batches yet. Submit a sweep with the form above."));
    return CHANGED;
  }, {
    minDelay: 2000,
    onError: errorsInto(errorBox, "Could not load batches: "),
  }).start();
  return () => poller.stop();
}
