// #/jobs/<id>: one job — live curves, progress, spec, error, cancel, model, boundary.
import { api } from "./api.js";
import { renderBoundary } from "./boundary.js";
import { PALETTE, draw, line, plotlyReady, purge } from "./charts.js";
import { CurveSeries } from "./curves.js";
import { Findings } from "./findings.js";
import { h, replace } from "./dom.js";
import {
  FINISHED, dateTime, duration, errorMessage, jobName, number, percent, progressBar, shortId, statusPill,
} from "./format.js";
import { cancelOnClick, CHANGED, DONE, errorsInto, Poller, UNCHANGED } from "./poll.js";
import { specSummary } from "./specsummary.js";

// The charts ask for what they can draw: about one point per pixel of a chart's width
// (the API keeps each bucket's first, last, minimum and maximum: M4), again for the
// zoomed range on zoom; live tails come by `since`. A line stays responsive below
// MAX_POINTS (older points are thinned past it).
const HISTORY_POINTS = 2000;
const MAX_POINTS = 4000;

function pointsFor(div, fallback) {
  const width = Math.round(div.clientWidth || fallback || 800);
  return Math.max(100, Math.min(HISTORY_POINTS, width));
}

/** An epoch x axis; whole-number ticks while there are only a few epochs. */
function epochAxis(n) {
  return n < 12 ? { title: { text: "epoch" }, dtick: 1 } : { title: { text: "epoch" } };
}

function chartCard(title, id, extra) {
  const plot = h("div", { class: "chart", id, dataset: { points: "0" } });
  const card = h("section", { class: "card chart-card", hidden: true },
    h("div", { class: "card-head" }, h("h2", {}, title), extra || null), plot);
  return { card, plot };
}

async function downloadModel(jobId, button, errorBox) {
  button.disabled = true;
  try {
    const blob = await api.blob(`/jobs/${encodeURIComponent(jobId)}/model`);
    const href = URL.createObjectURL(blob);
    const anchor = h("a", { href, download: `deltaflow-model-${jobId}.json` });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  } catch (error) {
    errorBox.textContent = `Model download failed: ${errorMessage(error)}`;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// What the charts draw: gradient norms only for a job that records them (the API sends
// them only when asked for).
const METRIC_FIELDS = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"];
function curveFields(job) {
  const records = job?.spec?.training?.record?.grad_norms;
  return (records ? [...METRIC_FIELDS, "grad_norms"] : METRIC_FIELDS).join(",");
}

export function renderJob(root, route) {
  const jobId = route.id;
  const path = `/jobs/${encodeURIComponent(jobId)}`;
  const series = new CurveSeries();
  let job = null;
  let jobEtag = null;
  let curveEtag = null;
  let since = null;
  let curveComplete = false;
  let boundaryDrawn = false;

  const title = h("h1", { id: "job-title" }, "Loading…");
  const pillBox = h("span", {});
  const actionError = h("p", { class: "error-line", hidden: true });
  const cancelButton = h("button", { class: "button danger", type: "button", id: "cancel-job", hidden: true }, "Cancel job");
  const modelButton = h("button", { class: "button", type: "button", id: "download-model", hidden: true }, "Download model (JSON)");
  const meta = h("div", { class: "meta-grid" });
  const progressBox = h("div", { class: "progress-box" });
  const errorCard = h("section", { class: "card error-card", id: "job-error", hidden: true });
  const findings = new Findings(path);
  const specBox = h("pre", { class: "code", id: "job-spec" });
  const summaryBox = h("div", { id: "job-summary" });
  const pollError = h("p", { class: "error-line", hidden: true });

  const logToggle = h("input", { type: "checkbox", id: "log-scale" });
  const loss = chartCard("Loss", "loss-chart",
    h("label", { class: "check" }, logToggle, "Log scale"));
  const accuracy = chartCard("Accuracy", "accuracy-chart");
  const grads = chartCard("Gradient norms per layer", "grad-chart",
    h("span", { class: "muted small" }, "‖D", h("sup", {}, "(l)"), "‖ (solid) and update ratio ‖ΔW‖/‖W‖ (dotted)"));
  const boundaryCard = h("section", { class: "card", id: "boundary-card", hidden: true });
  const epochsNote = h("span", { class: "muted small", id: "curve-count" }, "");

  replace(root,
    h("div", { class: "page-head" },
      h("div", {}, h("a", { href: "#/jobs", class: "back" }, "← Jobs"), h("div", { class: "title-row" }, title, pillBox)),
      h("div", { class: "actions" }, modelButton, cancelButton)),
    actionError, pollError,
    h("section", { class: "card" }, progressBox, meta),
    errorCard,
    findings.card,
    h("div", { class: "chart-grid" }, loss.card, accuracy.card),
    grads.card,
    h("div", { class: "chart-grid" }, boundaryCard,
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Spec"), epochsNote), summaryBox,
        h("details", { class: "raw-spec" }, h("summary", {}, "JSON as validated (defaults filled in)"), specBox))));

  function renderHead() {
    title.textContent = jobName(job);
    replace(pillBox, statusPill(job.status));
    const progress = job.progress || {};
    const active = !FINISHED.has(job.status);
    replace(progressBox,
      h("div", { class: "progress-line" },
        h("strong", {}, job.status === "queued" && !progress.epoch
          ? `Queued: waiting for a worker (${progress.epochs ?? "?"} epochs planned)`
          : `Epoch ${progress.epoch ?? 0} of ${progress.epochs ?? "?"}`),
        h("span", { class: "muted" }, active ? `ETA ${duration(progress.eta_seconds)}` : job.status)),
      progressBar(progress.fraction, job.status));
    const m = job.metrics || {};
    replace(meta,
      [["Job id", job.id], ["Batch", job.batch_id ? null : "—"], ["Created", dateTime(job.created_at)],
        ["Started", dateTime(job.started_at)], ["Finished", dateTime(job.finished_at)],
        ["Attempt", job.attempt ?? "—"], ["Train loss", number(m.train_loss)], ["Val loss", number(m.val_loss)],
        ["Train accuracy", percent(m.train_accuracy)], ["Val accuracy", percent(m.val_accuracy)]]
        .map(([label, value]) => h("div", { class: "meta" }, h("span", { class: "meta-label" }, label),
          label === "Batch" && job.batch_id
            ? h("a", { href: `#/batches/${encodeURIComponent(job.batch_id)}`, class: "mono" }, shortId(job.batch_id))
            : h("span", { class: label === "Job id" ? "mono small" : "" }, value))));
    cancelButton.hidden = !["queued", "running"].includes(job.status);
    modelButton.hidden = job.status !== "succeeded";
    errorCard.hidden = !job.error;
    if (job.error) {
      const error = job.error;
      replace(errorCard, h("h2", {}, "Error"),
        h("p", {}, h("span", { class: "pill pill-failed" }, error.type || "error"),
          error.epoch != null ? h("span", { class: "muted" }, ` at epoch ${error.epoch}`) : null),
        h("pre", { class: "code error-text" }, error.message || JSON.stringify(error, null, 2)));
    }
    const specText = JSON.stringify(job.spec, null, 2);
    if (specBox.textContent !== specText) {
      specBox.textContent = specText;
      replace(summaryBox, specSummary(job.spec));
    }
  }

  // A zoomed x range: {from, to, series} — the finer points of that range once fetched.
  let zoom = null;
  let zoomAsked = 0;

  async function zoomTo(from, to) {
    const asked = ++zoomAsked;
    zoom = { from, to, series: zoom?.series || series };
    renderCharts();
    const data = await api.get(`${path}/curve`, {
      from_epoch: from, to_epoch: to, max_points: pointsFor(loss.plot), fields: curveFields(job),
    });
    if (asked !== zoomAsked || !zoom) return; // a later zoom (or a reset) won
    const finer = new CurveSeries();
    finer.append(data.points);
    zoom = { from, to, series: finer };
    renderCharts();
  }

  function onRelayout(event) {
    if (event["xaxis.autorange"]) {
      zoomAsked += 1;
      if (zoom) {
        zoom = null;
        renderCharts();
      }
      return;
    }
    const range = event["xaxis.range"] || [event["xaxis.range[0]"], event["xaxis.range[1]"]];
    if (range[0] == null || range[1] == null) return;
    const from = Math.max(0, Math.floor(range[0]));
    const to = Math.ceil(range[1]);
    if (to < from || (zoom && zoom.from === from && zoom.to === to)) return;
    zoomTo(from, to).catch(errorsInto(pollError));
  }

  function renderCharts() {
    const n = series.length;
    const last = n ? series.epoch[n - 1] : 0;
    epochsNote.textContent = n === last ? `${n} epoch${n === 1 ? "" : "s"} recorded`
      : `${last} epochs recorded, ${n} drawn`;
    const view = zoom ? zoom.series : series;
    for (const chart of [loss, accuracy, grads]) {
      chart.plot.dataset.points = String(view.length);
      chart.plot.dataset.zoom = zoom ? `${zoom.from}-${zoom.to}` : "";
    }
    if (!n) return;
    drawCharts(view, zoom ? { range: [zoom.from, zoom.to] } : {});
    // Plotly may still be loading (it loads async): wire the zoom once the draws it held
    // back have run (they were queued on plotlyReady first, so they run first).
    plotlyReady.then(() => {
      for (const chart of [loss, accuracy, grads]) {
        if (chart.plot.on && !chart.plot.dataset.zoomable) {
          chart.plot.dataset.zoomable = "1";
          chart.plot.on("plotly_relayout", onRelayout);
        }
      }
    });
  }

  function drawCharts(series, range) {
    const n = series.length;
    // Show every card first, so each chart is drawn at its final width.
    loss.card.hidden = false;
    accuracy.card.hidden = !(series.has("train_accuracy") || series.has("val_accuracy"));
    grads.card.hidden = !series.gradD.length;
    const lossTraces = [line("train", series.epoch, series.train_loss, PALETTE[0])];
    if (series.has("val_loss")) lossTraces.push(line("validation", series.epoch, series.val_loss, PALETTE[1]));
    draw(loss.plot, lossTraces, {
      xaxis: { ...epochAxis(n), ...range },
      yaxis: { title: { text: "loss" }, type: logToggle.checked ? "log" : "linear" },
    });
    if (!accuracy.card.hidden) {
      const traces = [line("train", series.epoch, series.train_accuracy, PALETTE[0])];
      if (series.has("val_accuracy")) traces.push(line("validation", series.epoch, series.val_accuracy, PALETTE[1]));
      draw(accuracy.plot, traces, { xaxis: { ...epochAxis(n), ...range }, yaxis: { title: { text: "accuracy" }, range: [0, 1.02] } });
    }
    if (!grads.card.hidden) {
      const traces = series.gradD.map((values, layer) =>
        line(`‖D<sup>(${layer + 1})</sup>‖`, series.gradEpoch, values, PALETTE[layer % PALETTE.length]));
      series.updateRatio.forEach((values, layer) => traces.push(
        line(`ratio ${layer + 1}`, series.gradEpoch, values, PALETTE[layer % PALETTE.length],
          { line: { color: PALETTE[layer % PALETTE.length], width: 1.5, dash: "dot" } })));
      grads.plot.dataset.layers = String(series.gradD.length);
      draw(grads.plot, traces, { xaxis: { ...epochAxis(n), ...range }, yaxis: { type: "log", title: { text: "norm" } } });
    }
  }
  logToggle.addEventListener("change", renderCharts);

  async function tick() {
    let changed = false;
    const head = await api.getConditional(path, null, jobEtag);
    if (!head.notModified) {
      job = head.data;
      jobEtag = head.etag;
      renderHead();
      changed = true;
    }
    if (!curveComplete || !FINISHED.has(job.status)) {
      // The first request downsamples a long history; after it, only new points, all of them.
      const overview = { max_points: pointsFor(loss.plot, root.clientWidth / 2) };
      const query = since == null ? overview : { since };
      query.fields = curveFields(job);
      const curve = await api.getConditional(`${path}/curve`, query, curveEtag);
      if (!curve.notModified) {
        curveEtag = curve.etag;
        const added = series.append(curve.data.points);
        series.thin(MAX_POINTS);
        if (curve.data.next_since != null) since = curve.data.next_since;
        curveComplete = Boolean(curve.data.complete);
        if (added) {
          renderCharts();
          changed = true;
        }
      }
    }
    if (changed) await findings.refresh(FINISHED.has(job.status));
    if (FINISHED.has(job.status) && curveComplete) {
      if (job.status === "succeeded" && !boundaryDrawn) {
        boundaryDrawn = true;
        renderBoundary(boundaryCard, job).catch((error) => {
          boundaryCard.hidden = false;
          replace(boundaryCard, h("h2", {}, "Decision boundary"),
            h("p", { class: "error-line" }, `Could not draw the boundary: ${errorMessage(error)}`));
        });
      }
      return DONE;
    }
    return changed ? CHANGED : UNCHANGED;
  }

  const poller = new Poller(tick, {
    minDelay: 1000,
    maxDelay: 10000,
    onError: errorsInto(pollError),
  });

  cancelOnClick(cancelButton, path, poller, actionError);
  modelButton.addEventListener("click", () => downloadModel(jobId, modelButton, actionError));

  poller.start();
  return () => {
    poller.stop();
    for (const div of [loss.plot, accuracy.plot, grads.plot]) purge(div);
  };
}
