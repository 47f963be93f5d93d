// #/batches/<id>: a sweep's curves overlaid, its results table, the best job.
import { api } from "./api.js";
import { PALETTE, draw, plotlyText, purge } from "./charts.js";
import { CurveSeries } from "./curves.js";
import { h, replace, select } from "./dom.js";
import {
  FINISHED, batchOutcome, batchProgress, countsText, number, percent, progressBar, shortId, statusPill,
} from "./format.js";
import { compareCard } from "./compare.js";
import { lineageCard } from "./lineage.js";
import { cancelOnClick, CHANGED, DONE, errorsInto, Poller, UNCHANGED } from "./poll.js";
import { link } from "./router.js";
import { bandQuery, jobLabel, SweepChart, TOP_K } from "./sweepchart.js";

// Enough to see every curve's shape; a large sweep stays drawable.
const POINTS_PER_JOB = 1500;
// Up to this many jobs every curve is drawn; beyond, the best k and a band (sweepchart.js).
export const BIG_SWEEP = 12;
// Rows of the results table per page.
const TABLE_PAGE = 50;
// A big sweep's summary (every job's params and metrics: ~130 kB gzipped at 1,000 jobs) is
// asked for at most this often while it runs; the chart polls the band and the best curves.
const BIG_SUMMARY_EVERY_MS = 10000;

const METRICS = [
  ["val_loss", "validation loss", "min", "val loss"],
  ["train_loss", "training loss", "min", "train loss"],
  ["val_accuracy", "validation accuracy", "max", "val acc"],
  ["train_accuracy", "training accuracy", "max", "train acc"],
];

/** A short column title for a dotted path: its last segment, or its last three when they
 * hold a list index ("layers.0.units"). The full path goes in the title attribute. */
function shortPath(path) {
  const parts = path.split(".");
  const tail = parts.slice(-3);
  return tail.some((part) => /^\d+$/.test(part)) ? tail.join(".") : parts[parts.length - 1];
}

/** The varied parameters of a batch job, as {path: value}. */
function paramsOf(job) {
  return job.params || job.varied || {};
}

function formatParam(value) {
  if (typeof value === "number") return number(value, 4).replace(/\.?0+$/, "") || "0";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Where a batch job came from: its kind, a TPE trial's number, a PBT parent. */
function originText(job) {
  const origin = job.origin;
  if (!origin) return "";
  if (origin.kind === "pbt") return `pbt ← ${shortId(origin.parent)} @${origin.epoch}`;
  if (origin.kind === "tpe") return `tpe #${origin.trial}`;
  return origin.kind;
}

function compare(a, b) {
  if (a == null && b == null) return 0;
  if (a == null) return 1;
  if (b == null) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function renderBatch(root, route) {
  const batchId = route.id;
  const path = `/batches/${encodeURIComponent(batchId)}`;
  // The metric the user asked for; without one the server picks (validation loss, or the
  // training loss when no job has a validation split) and the page follows batch.metric.
  const asked = METRICS.some(([k]) => k === route.query.metric) ? route.query.metric : null;
  let metricKey = asked || "val_loss";
  let mode = METRICS.find(([k]) => k === metricKey)[2];
  const series = new Map(); // job id -> CurveSeries
  let batch = null;
  let summaryEtag = null;
  let cursor = null;
  let sort = null; // null: by the ranking metric, best first
  let tablePage = 0;
  let sweepChart = null; // a big sweep's chart, made when the batch turns out big

  const title = h("h1", { id: "batch-title" }, "Loading…");
  const counts = h("p", { class: "muted", id: "batch-counts" });
  const progressBox = h("div", { class: "progress-box" });
  const metricSelect = select({ id: "batch-metric", "aria-label": "Metric" },
    METRICS.map(([k, label]) => [k, label]), metricKey);
  const metricLabel = () => METRICS.find(([k]) => k === metricKey)[1];
  const chartTitle = h("h2", { id: "batch-chart-title" }, "Every job's curve");
  const chartHint = h("span", { class: "muted small", id: "batch-chart-hint" }, "best job drawn thick");
  const chartTools = h("div", { class: "chart-tools" }, chartHint);
  metricSelect.addEventListener("change", () => {
    window.location.hash = link(`batches/${encodeURIComponent(batchId)}`, { metric: metricSelect.value });
  });
  const cancelButton = h("button", { class: "button danger", type: "button", id: "cancel-batch", hidden: true },
    "Cancel unfinished jobs");
  const bestBox = h("div", { class: "best-box", id: "batch-best" });
  const plot = h("div", { class: "chart chart-tall", id: "batch-chart", dataset: { jobs: "0", points: "0" } });
  const tableBox = h("div", { class: "table-wrap" });
  const errorBox = h("p", { class: "error-line", hidden: true });
  const lineage = lineageCard();
  const comparison = compareCard(path);

  replace(root,
    h("div", { class: "page-head" },
      h("div", {}, h("a", { href: "#/batches", class: "back" }, "← Batches"), title, counts),
      h("div", { class: "actions" },
        h("a", { class: "button ghost", href: link("jobs", { batch_id: batchId }) }, "Its jobs in the list"),
        h("label", { class: "inline-field" }, "Rank by ", metricSelect), cancelButton)),
    errorBox,
    h("section", { class: "card" }, progressBox, bestBox),
    h("section", { class: "card chart-card" }, h("div", { class: "card-head" },
      chartTitle, chartTools), plot),
    lineage.card,
    comparison.card,
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Results"),
      h("span", { class: "muted small" }, "click a column to sort")), tableBox));

  const bestId = () => batch?.best?.id ?? null;
  const jobsOf = () => batch?.jobs || [];
  const nameOf = (job, index) => {
    const params = Object.entries(paramsOf(job));
    if (params.length) return params.map(([k, v]) => `${k.split(".").pop()}=${formatParam(v)}`).join(", ");
    return job.name || `job ${index + 1}`;
  };

  function renderSummary() {
    title.textContent = batch.name || `batch ${shortId(batch.id)}`;
    counts.textContent = countsText(batch.counts);
    const allDone = jobsOf().length > 0 && jobsOf().every((j) => FINISHED.has(j.status));
    replace(progressBox, h("div", { class: "progress-line" },
      h("strong", {}, `${batch.progress?.finished ?? 0} of ${batch.progress?.total ?? jobsOf().length} jobs finished`),
      h("span", { class: "muted" }, batch.kind ? `${batch.kind} sweep over ${(batch.varied || []).join(", ") || "—"}` : "")),
    progressBar(batchProgress(batch), allDone ? batchOutcome(batch) : "running"));
    const unfinished = jobsOf().some((j) => !FINISHED.has(j.status)) || Boolean(batch.search?.growing);
    cancelButton.hidden = !unfinished;
    lineage.render(batch);
    comparison.render(batch, metricKey, mode, metricLabel()).catch((error) => errorsInto(errorBox)(error));
    const best = batch.best;
    const bestJob = jobsOf().find((j) => j.id === best?.id);
    replace(bestBox, best && bestJob
      ? h("div", {}, h("span", { class: "badge-best" }, "★ Best"), " ",
        h("a", { href: `#/jobs/${encodeURIComponent(best.id)}`, id: "batch-best-link" },
          nameOf(bestJob, jobsOf().indexOf(bestJob))),
        h("span", { class: "muted" }, ` — ${metricLabel()} ${number(best.value)}`))
      : null,
    h("p", { class: "muted small", id: "batch-ranking" }, rankingText()));
    renderTable();
  }

  /** What ranks the jobs and why, in words that match the numbers on the page. */
  function rankingText() {
    const jobs = jobsOf();
    const finished = jobs.filter((j) => FINISHED.has(j.status));
    const succeeded = jobs.filter((j) => j.status === "succeeded");
    const has = (j, key) => typeof j.metrics?.[key] === "number";
    const rated = succeeded.filter((j) => has(j, metricKey)).length;
    const how = `the final value, ${mode === "min" ? "lowest" : "highest"} best`;
    // Only succeeded jobs are ranked: say how many those are when some ended otherwise.
    const ended = succeeded.length < finished.length ? ` (${succeeded.length} succeeded)` : "";
    const head = `${finished.length} of ${jobs.length} finished${ended}`;
    if (!jobs.length) return "This batch has no jobs.";
    if (!finished.length) return `No job has finished yet; they will be ranked by ${metricLabel()} (${how}).`;
    if (!succeeded.length) return `${finished.length} of ${jobs.length} finished; none succeeded, so none is ranked.`;
    if (!rated) {
      const other = metricKey === "val_loss" && succeeded.some((j) => has(j, "train_loss"))
        ? "; choose training loss to rank them" : "";
      return `${head}; none has a ${metricLabel()}${other}.`;
    }
    if (batch.metric_defaulted && metricKey === "train_loss") {
      return `${head}; none has a validation loss; ranked by training loss (${how}).`;
    }
    const unrated = succeeded.length - rated;
    const gap = unrated ? `; ${unrated} succeeded without a ${metricLabel()} are not ranked` : "";
    return `${head}; ranked by ${metricLabel()} (${how})${gap}.`;
  }

  function renderTable() {
    const jobs = jobsOf();
    const paramKeys = [...new Set(jobs.flatMap((j) => Object.keys(paramsOf(j))))];
    const columns = [
      { key: "index", label: "#", value: (j, i) => i + 1 },
      { key: "status", label: "Status", value: (j) => j.status, cell: (j) => statusPill(j.status) },
      ...paramKeys.map((key) => ({ key: `param:${key}`, label: shortPath(key), title: key, value: (j) => paramsOf(j)[key],
        cell: (j) => formatParam(paramsOf(j)[key]), num: true })),
      { key: "metric", label: METRICS.find(([k]) => k === metricKey)[3], value: (j) => j.metrics?.[metricKey],
        cell: (j) => (metricKey.includes("accuracy") ? percent : number)(j.metrics?.[metricKey]), num: true },
      ...METRICS.filter(([k]) => k !== metricKey).map(([k, , , label]) => ({ key: k, label,
        value: (j) => j.metrics?.[k], cell: (j) => (k.includes("accuracy") ? percent : number)(j.metrics?.[k]), num: true })),
      { key: "epoch", label: "Epochs", value: (j) => j.metrics?.epoch ?? j.epoch, num: true },
      { key: "origin", label: "Origin", value: originText },
      { key: "job", label: "Job", value: (j) => j.id,
        cell: (j) => h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono small" }, shortId(j.id)) },
    ];
    const indexed = jobs.map((job, index) => ({ job, index }));
    sort ||= { key: "metric", descending: mode === "max" };
    const column = columns.find((c) => c.key === sort.key) || columns[0];
    const pages = Math.max(1, Math.ceil(jobs.length / TABLE_PAGE));
    tablePage = Math.min(tablePage, pages - 1);
    indexed.sort((a, b) => {
      const order = compare(column.value(a.job, a.index), column.value(b.job, b.index));
      return sort.descending ? -order : order;
    });
    const header = h("tr", {}, columns.map((c) => h("th", {
      class: `sortable${c.num ? " num" : ""}${c.key === sort.key ? " sorted" : ""}`,
      dataset: { key: c.key },
      title: c.title || null,
      "aria-sort": c.key === sort.key ? (sort.descending ? "descending" : "ascending") : "none",
      onclick: () => {
        sort = { key: c.key, descending: c.key === sort.key ? !sort.descending : false };
        tablePage = 0;
        renderTable();
      },
    }, c.label, c.key === sort.key ? (sort.descending ? " ▼" : " ▲") : "")));
    const shown = indexed.slice(tablePage * TABLE_PAGE, (tablePage + 1) * TABLE_PAGE);
    const rows = shown.map(({ job, index }) => h("tr", {
      class: job.id === bestId() ? "best" : "",
      dataset: { jobId: job.id, status: job.status },
    }, columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.cell ? c.cell(job, index) : formatParam(c.value(job, index))))));
    const turn = (delta) => () => {
      tablePage += delta;
      renderTable();
    };
    const pager = pages > 1
      ? h("div", { class: "pager", id: "batch-pager" },
        h("button", { class: "button ghost small", type: "button", id: "batch-prev", disabled: tablePage === 0,
          onclick: turn(-1) }, "← Previous"),
        h("span", { class: "muted small", id: "batch-rows" },
          `rows ${tablePage * TABLE_PAGE + 1}–${tablePage * TABLE_PAGE + shown.length} of ${jobs.length}`),
        h("button", { class: "button ghost small", type: "button", id: "batch-next", disabled: tablePage === pages - 1,
          onclick: turn(1) }, "Next →"))
      : null;
    replace(tableBox, jobs.length
      ? [h("table", { class: "table", id: "batch-table" }, h("thead", {}, header), h("tbody", {}, rows)), pager]
      : h("p", { class: "empty" }, "This batch has no jobs."));
  }

  function renderChart() {
    const jobs = jobsOf();
    const traces = [];
    let points = 0;
    jobs.forEach((job, index) => {
      const s = series.get(job.id);
      if (!s || !s.length) return;
      points += s.length;
      const best = job.id === bestId();
      traces.push({
        type: "scatter", mode: "lines", name: plotlyText(nameOf(job, index)), x: s.epoch, y: s[metricKey],
        line: { color: PALETTE[index % PALETTE.length], width: best ? 4 : 1.5 },
        opacity: best || !bestId() ? 1 : 0.55,
      });
    });
    plot.dataset.jobs = String(traces.length);
    plot.dataset.points = String(points);
    if (!traces.length) return;
    draw(plot, traces, {
      hovermode: "closest",
      xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: metricKey.replace("_", " ") }, type: metricKey.includes("loss") ? "log" : "linear" },
      legend: { orientation: "v", x: 1.02, y: 1 },
      // The top margin holds Plotly's toolbar, which otherwise covers the legend.
      margin: { l: 56, r: 8, t: 40, b: 44 },
    });
  }

  let earlyBand = null; // the first band, asked for beside the first summary
  let earlyDraw = null; // a big sweep's first draw from it, not waiting for the summary
  let summaryAt = 0; // when the summary was last asked for (performance.now())

  async function tick() {
    let changed = false;
    if (!batch && !earlyBand) {
      // The first poll cannot know whether the sweep is big: ask for its band at once (a
      // few kB), so a big sweep's chart does not wait for the summary (every job's params
      // and metrics: ~170 kB gzipped, seconds on a busy server at 1,000 jobs).
      earlyBand = api.getConditional(`${path}/band`, bandQuery(asked, asked ? mode : null), null)
        .catch(() => null);
      earlyDraw = earlyBand.then(drawEarly).catch(() => null);
    }
    // The first summary is asked for once the band is in: on a busy server the two share
    // the CPU, and the band (then the best curves) is what a big sweep's chart waits for.
    if (!batch && earlyBand) await earlyBand;
    const big = jobsOf().length > BIG_SWEEP;
    const fresh = big && performance.now() - summaryAt < BIG_SUMMARY_EVERY_MS;
    const summary = fresh ? { notModified: true }
      : await api.getConditional(path, asked ? { metric: asked } : {}, summaryEtag);
    if (!fresh) summaryAt = performance.now();
    if (!summary.notModified) {
      batch = summary.data;
      summaryEtag = summary.etag;
      metricKey = batch.metric;
      mode = batch.mode;
      metricSelect.value = metricKey;
      chartTitle.textContent = `Every job's ${metricLabel()}`;
      renderSummary();
      changed = true;
    }
    const growing = Boolean(batch?.search?.growing); // a TPE search still making trials
    if (jobsOf().length > BIG_SWEEP) return bigTick(changed, growing);
    // One request brings every job's new points: the sweep costs one call per poll.
    const curves = await api.get(`${path}/curves`, cursor ? { cursor } : {});
    let added = 0;
    for (const entry of curves.jobs || []) {
      if (!series.has(entry.id)) series.set(entry.id, new CurveSeries());
      added += series.get(entry.id).append(entry.points);
      series.get(entry.id).thin(POINTS_PER_JOB);
    }
    if (curves.next_cursor) cursor = curves.next_cursor;
    if (added || changed) renderChart();
    // complete: every job finished and every point delivered; truncated: more already stored.
    if (curves.complete && !growing && jobsOf().every((j) => FINISHED.has(j.status))) return DONE;
    return added || changed || curves.truncated ? CHANGED : UNCHANGED;
  }

  function makeSweepChart() {
    if (sweepChart) return;
    sweepChart = new SweepChart(plot, path, (id) => {
      window.location.hash = `#/jobs/${encodeURIComponent(id)}`;
    });
    sweepChart.onToggle = () => {
      sweepChart.render(jobLabel);
      if (poller.running) poller.poke();
      else poller.start();
    };
    chartTools.prepend(sweepChart.toggle, " ");
  }

  function describeBand() {
    const band = sweepChart.band;
    if (!band) return;
    const shown = Math.min(TOP_K, band.ranked);
    const rest = sweepChart.showAll ? "every job's line in grey" : "the rest as a band";
    chartTitle.textContent = band.ranked
      ? `Best ${shown} of ${band.jobs} jobs by ${metricLabel()}, ${rest}`
      : `No job has a ${metricLabel()} yet`;
    chartHint.textContent = "★ best job thick · hover names a job · click opens it";
  }

  /** The early band says the sweep is big: draw it (the band, then the best k's curves)
   * while the summary is still on its way; bigTick then finds both loaded. */
  async function drawEarly(answer) {
    const band = answer?.data;
    if (!band || band.jobs <= BIG_SWEEP || batch || !poller.running) return;
    makeSweepChart();
    metricKey = band.metric; // what the summary will say too: the same default
    mode = band.mode;
    metricSelect.value = metricKey;
    await sweepChart.refresh(metricKey, mode, true, answer);
    if (!poller.running || sweepChart.rendered) return;
    describeBand();
    sweepChart.render(jobLabel);
  }

  /** A big sweep: the best k and the band (from the server), never every point. */
  async function bigTick(changed, growing) {
    if (earlyDraw) await earlyDraw; // its curve requests are not made twice
    earlyDraw = null;
    makeSweepChart();
    sweepChart.jobs = jobsOf();
    const running = growing || jobsOf().some((j) => !FINISHED.has(j.status));
    const result = await sweepChart.refresh(metricKey, mode, running, earlyBand);
    earlyBand = false; // taken (or not usable): later polls ask with the summary's metric
    describeBand();
    // The summary names every job's line when they are all drawn; else the band suffices.
    if (result.changed || !sweepChart.rendered || (changed && sweepChart.showAll)) {
      sweepChart.render(jobLabel);
    }
    plot.dataset.done = result.done ? "1" : "0"; // everything the chart shows is loaded
    if (result.done) return DONE;
    return result.changed || changed ? CHANGED : UNCHANGED;
  }

  const poller = new Poller(tick, {
    minDelay: 1000,
    maxDelay: 10000,
    onError: errorsInto(errorBox),
  });
  cancelOnClick(cancelButton, path, poller, errorBox);
  poller.start();
  return () => {
    poller.stop();
    sweepChart?.destroy();
    comparison.destroy();
    purge(plot);
  };
}
