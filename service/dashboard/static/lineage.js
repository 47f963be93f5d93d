// A PBT population's lineage: one line per trial along the epochs, and an arrow for each
// exploit from the parent (at the copied epoch) to the trial that took its checkpoint.
import { h, replace } from "./dom.js";
import { shortId } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const LEFT = 90;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}

function describe(step) {
  const values = Object.entries(step.perturbed || {})
    .map(([path, value]) => `${path.split(".").pop()}=${typeof value === "number" ? value.toPrecision(3) : JSON.stringify(value)}`)
    .join(", ");
  return `epoch ${step.epoch}: copied ${shortId(step.parent)} at epoch ${step.parent_epoch}${values ? `; ${values}` : ""}`;
}

/** A card that draws `batch.lineage` (hidden when the batch has no exploit). */
export function lineageCard() {
  const body = h("div", { id: "batch-lineage", dataset: { exploits: "0" } });
  const card = h("section", { class: "card", hidden: true },
    h("div", { class: "card-head" }, h("h2", {}, "Lineage"),
      h("span", { class: "muted small" }, "population based training: who copied whom, and when")),
    body);

  function render(batch) {
    const lineage = batch?.lineage || [];
    card.hidden = lineage.length === 0;
    body.dataset.exploits = String(lineage.length);
    if (!lineage.length) return;
    const jobs = batch.jobs || [];
    const row = new Map(jobs.map((job, i) => [job.id, i]));
    const lastEpoch = Math.max(1, ...jobs.map((j) => j.epochs || j.epoch || 1));
    const width = 720;
    const height = ROW * jobs.length + 30;
    const x = (epoch) => LEFT + (epoch / lastEpoch) * (width - LEFT - 16);
    const y = (id) => 16 + ROW * (row.get(id) ?? 0);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "lineage", role: "img",
      "aria-label": "exploits between trials" });
    const marker = svg("marker", { id: "lineage-arrow", viewBox: "0 0 8 8", refX: 7, refY: 4,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M0,0 L8,4 L0,8 z", class: "lineage-head" }));
    const defs = svg("defs", {});
    defs.append(marker);
    root.append(defs);
    jobs.forEach((job) => {
      root.append(svg("text", { x: 4, y: y(job.id) + 4, class: "lineage-label" }, `#${job.index} ${shortId(job.id)}`));
      root.append(svg("line", { x1: x(0), y1: y(job.id), x2: x(job.epoch || 0), y2: y(job.id), class: "lineage-trial" }));
    });
    lineage.forEach((step) => {
      const arrow = svg("line", {
        x1: x(step.parent_epoch), y1: y(step.parent), x2: x(step.parent_epoch), y2: y(step.job_id),
        class: "lineage-exploit", "marker-end": "url(#lineage-arrow)",
        "data-child": step.job_id, "data-parent": step.parent, "data-epoch": step.parent_epoch,
      });
      arrow.append(svg("title", {}, describe(step)));
      root.append(arrow);
    });
    replace(body, root, h("ul", { class: "lineage-list small" },
      lineage.map((step) => h("li", { dataset: { child: step.job_id } }, `${shortId(step.job_id)} — ${describe(step)}`))));
  }

  return { card, render };
}
