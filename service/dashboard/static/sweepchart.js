// A big sweep's loss chart: the k best jobs as lines with a legend, the rest as a band
// (quantiles per epoch across the jobs, computed by the server: GET /batches/{id}/band),
// hover naming the job under the pointer (GET /batches/{id}/nearest), a click opening it,
// and a toggle that draws every job's line when a user insists.
import { api } from "./api.js";
import { PALETTE, draw, plotlyText } from "./charts.js";
import { CurveSeries } from "./curves.js";
import { h } from "./dom.js";
import { FINISHED, number } from "./format.js";

export const TOP_K = 10;
// Band epochs and points per best-job curve: a chart 1,000 px wide shows no more.
export const BAND_POINTS = 100;
export const CURVE_POINTS = 200;
// Points per job when every line is drawn.
const ALL_POINTS_PER_JOB = 60;
const BAND_FILL = ["rgba(100, 116, 139, 0.16)", "rgba(100, 116, 139, 0.30)"];

/** "lr=0.01, units=8", or the job's name. */
export function jobLabel(job) {
  const params = Object.entries(job.params || {});
  if (!params.length) return job.name || `job ${(job.index ?? 0) + 1}`;
  return params.map(([key, value]) => `${key.split(".").pop()}=${formatValue(value)}`).join(", ");
}

function formatValue(value) {
  if (typeof value === "number") return number(value, 4).replace(/\.?0+$/, "") || "0";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The band request of a page (metric null: the server's default, as in the summary). */
export function bandQuery(metric, mode) {
  return { ...(metric ? { metric, mode } : {}), k: TOP_K, points: BAND_POINTS };
}

export class SweepChart {
  /**
   * @param {HTMLElement} plot the chart's div
   * @param {string} path the batch's API path (/batches/<id>)
   * @param {(id: string) => void} open what a click on a job does
   */
  constructor(plot, path, open) {
    this.plot = plot;
    this.path = path;
    this.open = open;
    this.band = null;
    this.bandEtag = null;
    this.taken = null; // the prefetched band answer refresh took
    this.rendered = false;
    this.bandQuery = "";
    this.curves = new Map(); // job id -> {series, nextSince, complete}
    this.showAll = false;
    this.all = null; // {series: Map id -> CurveSeries, cursor, complete}
    this.metric = "val_loss";
    this.hoverJob = null;
    this.hoverTimer = null;
    this.hoverAsked = "";
    this.clickedTrace = false;
    this.tip = h("div", { class: "chart-tip", id: "batch-chart-tip", hidden: true });
    plot.parentElement?.classList.add("chart-host");
    plot.after(this.tip);
    this.toggle = h("label", { class: "inline-field small" },
      h("input", { type: "checkbox", id: "batch-all-lines", onchange: (event) => {
        this.showAll = event.target.checked;
        this.onToggle?.();
      } }), " every line");
    this.onMove = (event) => this.pointerMoved(event);
    this.onLeave = () => this.hideTip();
    // Plotly covers the page while a button is down (its drag layer), so the click never
    // reaches the plot: a press and a release in the same place is one. Plotly's own
    // plotly_click (on a best job's line) runs first and wins.
    this.onDown = (event) => {
      // The drag layer also ends the hover (mouseleave): keep the job named at the press.
      this.pressed = { x: event.clientX, y: event.clientY, job: this.tip.hidden ? null : this.hoverJob };
    };
    this.onUp = (event) => {
      const pressed = this.pressed;
      this.pressed = null;
      if (!pressed || Math.hypot(event.clientX - pressed.x, event.clientY - pressed.y) > 4) return;
      setTimeout(() => this.clicked(pressed.job), 0);
    };
    plot.addEventListener("mousemove", this.onMove);
    plot.addEventListener("mouseleave", this.onLeave);
    plot.addEventListener("mousedown", this.onDown);
    window.addEventListener("mouseup", this.onUp);
  }

  destroy() {
    clearTimeout(this.hoverTimer);
    this.plot.removeEventListener("mousemove", this.onMove);
    this.plot.removeEventListener("mouseleave", this.onLeave);
    this.plot.removeEventListener("mousedown", this.onDown);
    window.removeEventListener("mouseup", this.onUp);
  }

  /**
   * One poll: the band and the best jobs (304 while no job changed), the best jobs' new
   * points, and every job's when "every line" is on. Resolves whether anything changed,
   * and whether everything is loaded (``done``) for a batch whose jobs all finished.
   */
  async refresh(metric, mode, jobsRunning, prefetched = null) {
    this.metric = metric;
    const query = bandQuery(metric, mode);
    const key = JSON.stringify(query);
    if (key !== this.bandQuery) {
      this.bandQuery = key;
      this.bandEtag = null;
    }
    let changed = false;
    // The page's first band, asked for beside the summary (bandQuery): taken if it ranks by
    // the same metric, which it does unless the summary's default differs.
    const early = prefetched ? await prefetched : null;
    const usable = early?.data && early.data.metric === metric && early.data.mode === mode;
    let answer;
    if (usable && early === this.taken) answer = { notModified: true }; // drawn already
    else if (usable) answer = this.taken = early;
    else answer = await api.getConditional(`${this.path}/band`, query, this.bandEtag);
    if (!answer.notModified) {
      this.band = answer.data;
      this.bandEtag = answer.etag;
      changed = true;
    }
    const top = this.band?.top || [];
    const loads = top.map((job) => this.loadCurve(job));
    const added = (await Promise.all(loads)).reduce((a, b) => a + b, 0);
    let allDone = true;
    if (this.showAll) {
      const more = await this.loadAll();
      changed = changed || more.added > 0;
      allDone = more.complete;
    }
    const topDone = top.every((job) => this.curves.get(job.id)?.complete);
    return { changed: changed || added > 0, done: !jobsRunning && topDone && allDone };
  }

  /** A best job's curve: downsampled at first, then only its new points while it runs. */
  async loadCurve(job) {
    let entry = this.curves.get(job.id);
    if (entry && (entry.complete || FINISHED.has(entry.status) && entry.loaded)) return 0;
    if (!entry) {
      entry = { series: new CurveSeries(), nextSince: 0, complete: false, status: job.status, loaded: false };
      this.curves.set(job.id, entry);
    }
    // Only the metric drawn, downsampled (M4: the first, last, lowest and highest kept).
    const query = { since: entry.nextSince, max_points: CURVE_POINTS, fields: this.metric };
    const answer = await api.getConditional(`/jobs/${encodeURIComponent(job.id)}/curve`, query, entry.etag);
    if (answer.notModified) return 0;
    const data = answer.data;
    entry.etag = answer.etag;
    entry.status = data.status;
    entry.nextSince = data.next_since;
    entry.complete = Boolean(data.complete);
    entry.loaded = true;
    const added = entry.series.append(data.points);
    entry.series.thin(CURVE_POINTS * 4);
    return added;
  }

  /** Every job's curve through the batch-curves cursor (asked for by the toggle only). */
  async loadAll() {
    this.all ||= { series: new Map(), cursor: null, complete: false };
    let added = 0;
    for (let round = 0; round < 50; round += 1) {
      // max_points caps each job (M4-downsampled); only the metric drawn.
      const query = { max_points: ALL_POINTS_PER_JOB, fields: this.metric };
      if (this.all.cursor) query.cursor = this.all.cursor;
      const answer = await api.get(`${this.path}/curves`, query);
      for (const entry of answer.jobs || []) {
        if (!entry.points?.length) continue;
        if (!this.all.series.has(entry.id)) this.all.series.set(entry.id, new CurveSeries());
        added += this.all.series.get(entry.id).append(entry.points);
      }
      this.all.cursor = answer.next_cursor || this.all.cursor;
      this.all.complete = Boolean(answer.complete);
      if (!answer.truncated) break;
    }
    return { added, complete: this.all.complete };
  }

  /** Draw what is loaded: the band, every line (if asked), the best jobs on top. */
  render(names) {
    const band = this.band;
    if (!band) return;
    const metric = this.metric;
    const traces = [];
    const series = band.band;
    const label = `${band.ranked} of ${band.jobs} jobs`;
    const hasBand = series.epoch.length > 0 && series.p50.some((v) => v != null);
    if (hasBand && !this.showAll) { // with every line drawn, the lines are the spread
      const edge = { type: "scatter", mode: "lines", x: series.epoch, line: { width: 0 },
        hoverinfo: "skip", showlegend: false, legendgroup: "band" };
      traces.push({ ...edge, name: "p10", y: series.p10 });
      traces.push({ ...edge, name: `10–90% of ${label}`, y: series.p90, fill: "tonexty",
        fillcolor: BAND_FILL[0], showlegend: true });
      traces.push({ ...edge, name: "p25", y: series.p25 });
      traces.push({ ...edge, name: "25–75%", y: series.p75, fill: "tonexty",
        fillcolor: BAND_FILL[1], showlegend: true });
      traces.push({ type: "scatter", mode: "lines", name: "median", x: series.epoch, y: series.p50,
        line: { color: "#475569", width: 1.5, dash: "dash" }, legendgroup: "band",
        hovertemplate: `median of %{customdata} jobs: %{y:.4g} @ epoch %{x}<extra></extra>`,
        customdata: series.count });
    }
    if (hasBand && this.showAll) {
      traces.push({ type: "scatter", mode: "lines", name: "median", x: series.epoch, y: series.p50,
        line: { color: "#0f172a", width: 1.5, dash: "dash" }, legendgroup: "band", hoverinfo: "skip" });
    }
    if (this.showAll && this.all) traces.push(this.allLinesTrace(metric, names));
    let points = 0;
    const bestId = band.best?.id;
    const top = [...band.top].reverse(); // the best is drawn last: on top
    top.forEach((job) => {
      const entry = this.curves.get(job.id);
      if (!entry || !entry.series.length) return;
      const rank = band.top.indexOf(job);
      const best = job.id === bestId;
      points += entry.series.length;
      traces.push({
        type: "scatter", mode: "lines",
        name: plotlyText(`${best ? "★ " : ""}#${rank + 1} ${names(job)}`),
        x: entry.series.epoch, y: entry.series[metric],
        line: { color: PALETTE[rank % PALETTE.length], width: best ? 4 : 1.6 },
        customdata: entry.series.epoch.map(() => job.id),
        hovertemplate: `${plotlyText(names(job))}<br>%{y:.4g} @ epoch %{x}<extra>#${rank + 1}</extra>`,
        legendrank: rank + 1,
      });
    });
    // Legend order: the best jobs first, then the band.
    traces.forEach((trace) => {
      if (trace.legendgroup === "band") trace.legendrank = 100;
    });
    this.plot.dataset.mode = this.showAll ? "all" : "band";
    this.plot.dataset.jobs = String(band.top.length);
    this.plot.dataset.points = String(points);
    this.plot.dataset.band = hasBand ? "1" : "0";
    this.plot.dataset.best = bestId || "";
    const loss = metric.includes("loss");
    this.rendered = true;
    draw(this.plot, traces, {
      hovermode: "closest",
      xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: metric.replace("_", " ") }, type: loss ? "log" : "linear" },
      legend: { orientation: "v", x: 1.02, y: 1, traceorder: "normal" },
      // The top margin holds Plotly's toolbar, which otherwise covers the legend's first entry.
      margin: { l: 56, r: 8, t: 40, b: 44 },
    }).then(() => {
      if (!this.plot.dataset.drawnAt) this.plot.dataset.drawnAt = String(Math.round(performance.now()));
      this.wirePlotlyClick();
    });
  }

  /** Every job's line as ONE trace (null between jobs): a thousand traces would choke
   * the browser; hover still names each job from its point's text. SVG, not scattergl:
   * WebGL's shader code generation needs 'unsafe-eval', which the API's CSP refuses. */
  allLinesTrace(metric, names) {
    const x = [];
    const y = [];
    const text = [];
    const ids = [];
    const byId = new Map((this.jobs || []).map((job) => [job.id, job]));
    for (const [id, s] of this.all.series) {
      const name = plotlyText(names(byId.get(id) || { id, params: {}, name: id }));
      for (let i = 0; i < s.length; i += 1) {
        x.push(s.epoch[i]);
        y.push(s[metric][i]);
        text.push(name);
        ids.push(id);
      }
      x.push(null);
      y.push(null);
      text.push("");
      ids.push(null);
    }
    return { type: "scatter", mode: "lines", name: `every job (${this.all.series.size})`, x, y, text,
      customdata: ids, line: { color: "rgba(71, 85, 105, 0.25)", width: 1 },
      hovertemplate: "%{text}<br>%{y:.4g} @ epoch %{x}<extra></extra>", legendrank: 99 };
  }

  wirePlotlyClick() {
    if (this.plot.dataset.clickWired) return;
    this.plot.dataset.clickWired = "1";
    this.plot.on("plotly_click", (event) => {
      const id = event.points?.[0]?.customdata;
      if (typeof id === "string") {
        this.clickedTrace = true;
        this.open(id);
      }
    });
  }

  /** The pointer in data coordinates, or null outside the plotting area. */
  dataAt(event) {
    const layout = this.plot._fullLayout;
    if (!layout?.xaxis || !layout?.yaxis) return null;
    const box = this.plot.getBoundingClientRect();
    const px = event.clientX - box.left - layout._size.l;
    const py = event.clientY - box.top - layout._size.t;
    if (px < 0 || py < 0 || px > layout._size.w || py > layout._size.h) return null;
    const x = layout.xaxis.p2l(px);
    const yl = layout.yaxis.p2l(py);
    const y = layout.yaxis.type === "log" ? 10 ** yl : yl;
    return { epoch: Math.max(1, Math.round(x)), value: y, px: px + layout._size.l, py: py + layout._size.t };
  }

  pointerMoved(event) {
    if (!this.band || this.showAll) return; // every line drawn: Plotly names them itself
    const at = this.dataAt(event);
    clearTimeout(this.hoverTimer);
    if (!at || !Number.isFinite(at.value)) {
      this.hideTip();
      return;
    }
    this.hoverTimer = setTimeout(() => this.askNearest(at), 120);
  }

  async askNearest(at) {
    const asked = `${at.epoch}:${at.value.toPrecision(3)}`;
    if (asked === this.hoverAsked) return this.placeTip(at);
    this.hoverAsked = asked;
    try {
      const answer = await api.get(`${this.path}/nearest`, { metric: this.metric, epoch: at.epoch, value: at.value });
      if (this.hoverAsked !== asked) return undefined;
      this.hoverJob = answer.job;
      this.placeTip(at);
    } catch {
      this.hideTip();
    }
    return undefined;
  }

  placeTip(at) {
    const job = this.hoverJob;
    if (!job) {
      this.hideTip();
      return;
    }
    this.tip.replaceChildren(
      h("strong", {}, jobLabel(job)),
      h("span", {}, ` ${number(job.value)} @ epoch ${at.epoch}`),
      h("span", { class: "muted" }, ` · ${job.status} · click to open`));
    this.tip.dataset.jobId = job.id;
    // The tip lives in the chart's card (position: relative), the pointer in the plot.
    this.tip.style.left = `${Math.round(this.plot.offsetLeft + at.px + 14)}px`;
    this.tip.style.top = `${Math.round(this.plot.offsetTop + at.py + 10)}px`;
    this.tip.hidden = false;
  }

  hideTip() {
    this.hoverAsked = "";
    this.hoverJob = null;
    this.tip.hidden = true;
    delete this.tip.dataset.jobId;
  }

  clicked(job) {
    if (this.clickedTrace) {
      this.clickedTrace = false;
      return;
    }
    if (job) this.open(job.id);
  }
}
