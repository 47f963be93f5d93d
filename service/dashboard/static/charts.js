// Plotly (served at /vendor/plotly.min.js: service/dashboard/__init__.py) with one look.

export const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2",
  "#ca8a04", "#db2777", "#4b5563", "#65a30d"];

const BASE_LAYOUT = {
  margin: { l: 56, r: 16, t: 12, b: 44 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "#ffffff",
  font: { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12,
    color: "#334155" },
  xaxis: { gridcolor: "#eef2f7", zeroline: false, linecolor: "#cbd5e1" },
  yaxis: { gridcolor: "#eef2f7", zeroline: false, linecolor: "#cbd5e1" },
  legend: { orientation: "h", y: -0.22, x: 0 },
  hovermode: "x unified",
};

const CONFIG = { displaylogo: false, responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] };

function merged(extra) {
  return {
    ...BASE_LAYOUT,
    ...extra,
    xaxis: { ...BASE_LAYOUT.xaxis, ...(extra.xaxis || {}) },
    yaxis: { ...BASE_LAYOUT.yaxis, ...(extra.yaxis || {}) },
  };
}

const resizeObserver = new ResizeObserver((entries) => {
  for (const entry of entries) {
    if (entry.target.data && entry.contentRect.width > 0) window.Plotly.Plots.resize(entry.target);
  }
});

/** Draw or redraw `div` with `traces`; `revision` makes Plotly notice grown arrays. */
export function draw(div, traces, layout = {}) {
  const full = merged(layout);
  full.datarevision = (Number(div.dataset.revision) || 0) + 1;
  div.dataset.revision = String(full.datarevision);
  // Cards appear and grids reflow after the first draw: follow the div's size.
  if (!div.dataset.observed) {
    div.dataset.observed = "1";
    resizeObserver.observe(div);
  }
  if (window.Plotly) return window.Plotly.react(div, traces, full, CONFIG);
  return plotlyReady.then(() => (div.isConnected ? window.Plotly.react(div, traces, full, CONFIG) : div));
}

/**
 * Plotly (the cartesian bundle, ~1.5 MB; the full 4.8 MB one where npm has not installed
 * it) downloads from the start (index.html preloads it) but runs only once the modules have
 * run: this module, evaluated with the others before any view, adds its script, which the
 * browser executes in a later task, after the views have sent their first requests. A draw
 * before it is ready waits for it here.
 */
export const plotlyReady = window.Plotly
  ? Promise.resolve()
  : new Promise((resolve) => {
    let script = document.querySelector("script[data-plotly]");
    if (!script) {
      script = document.createElement("script");
      script.src = "/vendor/plotly.min.js";
      script.dataset.plotly = "";
      document.head.append(script);
    }
    const check = () => (window.Plotly ? resolve() : null);
    script.addEventListener("load", check);
    check();
  });

export function purge(div) {
  if (!div) return;
  resizeObserver.unobserve(div);
  if (window.Plotly) window.Plotly.purge(div);
}

/**
 * Plotly reads a few HTML-like tags (<b>, <a href>, <br>) in trace names and titles; user
 * text must show as typed, so its markup characters become entities Plotly displays literally.
 */
export function plotlyText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function line(name, x, y, color, extra = {}) {
  return { type: "scatter", mode: "lines", name, x, y, line: { color, width: 2 }, ...extra };
}
