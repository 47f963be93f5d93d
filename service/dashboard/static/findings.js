// Why the job is (not) learning: GET /jobs/{id}/diagnostics as cards on the job page.
// Each card points at the chart that shows what it is about: a click scrolls there,
// highlights the chart and marks the finding's epoch on it.
import { api } from "./api.js";
import { h, replace } from "./dom.js";

const TITLES = {
  diverged: "Training diverged",
  exploding_gradients: "Exploding gradients",
  vanishing_gradients: "Vanishing gradients",
  dead_relu: "Dead ReLU units",
  saturated_units: "Saturated units",
  learning_rate_too_high: "Learning rate too high",
  learning_rate_too_low: "Learning rate too low",
  overfitting: "Overfitting",
  underfitting: "Underfitting",
};

// The charts that show each finding, best first; the first one drawn on the page is used.
const LOSS = ["loss-chart"];
const GRADIENTS = ["grad-chart", "loss-chart"];
const UNITS = ["activation-chart", "grad-chart", "loss-chart"];
const CHARTS = {
  diverged: LOSS,
  learning_rate_too_high: LOSS,
  learning_rate_too_low: LOSS,
  overfitting: LOSS,
  underfitting: ["accuracy-chart", "loss-chart"],
  vanishing_gradients: GRADIENTS,
  exploding_gradients: GRADIENTS,
  dead_relu: UNITS,
  saturated_units: UNITS,
};
const HIGHLIGHT_MS = 2500;
// A running job changes every flush; its (provisional) findings are asked for this often.
const RUNNING_REFRESH_MS = 5000;

function chartFor(code) {
  for (const id of CHARTS[code] || LOSS) {
    const chart = document.getElementById(id);
    const card = chart?.closest(".card");
    if (chart && card && !card.hidden) return { chart, card };
  }
  return null;
}

function evidenceValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  if (Array.isArray(value)) return `[${value.map(evidenceValue).join(", ")}]`;
  if (value === null || value === undefined) return "—";
  return String(value);
}

/** Scroll to the chart a finding is about, highlight it and mark the finding's epoch. */
function showOnChart(finding) {
  const target = chartFor(finding.code);
  if (!target) return;
  target.card.scrollIntoView({ behavior: "smooth", block: "center" });
  target.card.classList.add("highlighted");
  target.chart.dataset.highlight = finding.code;
  clearTimeout(target.card.highlightTimer);
  target.card.highlightTimer = setTimeout(() => target.card.classList.remove("highlighted"), HIGHLIGHT_MS);
  if (finding.epoch != null && window.Plotly && target.chart.data) {
    window.Plotly.relayout(target.chart, {
      shapes: [{ type: "line", x0: finding.epoch, x1: finding.epoch, yref: "paper", y0: 0, y1: 1,
        line: { color: "#dc2626", width: 1.5, dash: "dot" } }],
    });
  }
}

function findingCard(finding, index) {
  const target = (CHARTS[finding.code] || LOSS)[0];
  const where = [finding.layer != null ? `layer ${finding.layer}` : null,
    finding.epoch != null ? `epoch ${finding.epoch}` : null].filter(Boolean).join(" · ");
  const evidence = Object.entries(finding.evidence || {}).map(([key, value]) =>
    h("div", { class: "evidence-row" }, h("span", { class: "mono" }, key), h("span", { class: "mono" }, evidenceValue(value))));
  const show = h("button", { type: "button", class: "button ghost small", dataset: { target } },
    "Show on the chart →");
  show.addEventListener("click", () => showOnChart(finding));
  return h("article", { class: `finding finding-${finding.severity}`, id: `finding-${index}`,
    dataset: { code: finding.code, severity: finding.severity } },
  h("div", { class: "finding-head" },
    h("span", { class: `pill severity-${finding.severity}` }, finding.severity),
    h("strong", {}, TITLES[finding.code] || finding.code),
    where ? h("span", { class: "muted small" }, where) : null),
  h("p", { class: "finding-message" }, finding.message),
  h("div", { class: "finding-actions" }, show,
    finding.code === "vanishing_gradients"
      ? h("a", { href: "#/explain?preset=vanishing", class: "small" }, "Why δ vanishes, in the backprop explainer")
      : null),
  evidence.length ? h("details", { class: "evidence" }, h("summary", { class: "small" }, "Evidence"), evidence) : null);
}

/** The findings card of one job; `refresh()` asks again (a 304 when the job did not change). */
export class Findings {
  constructor(jobPath) {
    this.path = `${jobPath}/diagnostics`;
    this.etag = null;
    this.card = h("section", { class: "card findings-card", id: "findings", hidden: true });
  }

  /** Ask again: at once for a finished job, at most every few seconds for a running one. */
  async refresh(finished) {
    const now = Date.now();
    if (!finished && now - (this.asked || 0) < RUNNING_REFRESH_MS) return;
    this.asked = now;
    const answer = await api.getConditional(this.path, null, this.etag);
    if (answer.notModified) return;
    this.etag = answer.etag;
    this.render(answer.data);
  }

  render(data) {
    const findings = data.findings || [];
    const running = !["succeeded", "failed", "cancelled"].includes(data.status);
    const read = data.epochs_read < data.epochs ? ` (read ${data.epochs_read} of ${data.epochs} epochs)` : "";
    this.card.hidden = data.epochs === 0 && findings.length === 0;
    replace(this.card,
      h("div", { class: "card-head" }, h("h2", {}, "Diagnosis"),
        h("span", { class: "muted small" },
          `${running ? "provisional: from the epochs so far" : "from the whole run"}${read}`)),
      findings.length
        ? h("div", { class: "findings" }, findings.map(findingCard))
        : h("p", { class: "muted", id: "no-findings" }, "Nothing looks wrong: no finding."));
  }
}
