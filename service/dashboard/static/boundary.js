// The decision boundary of a finished job on a 2-D dataset: predictions over a grid
// (POST /jobs/{id}/predict), with the training points on top: a stored dataset's (inline
// data is stored as one too) from GET /datasets/{id}/points, or an older spec's inline X.
import { ApiError, api } from "./api.js";
import { PALETTE, draw, plotlyText } from "./charts.js";
import { h, replace } from "./dom.js";

const GRID = 80;
// Points drawn at most: a fixed, class-balanced sample of a larger dataset (the server's cap
// is DELTAFLOW_MAX_DATASET_POINTS, 5000 by default).
const MAX_POINTS = 2000;
const TWO_D_GENERATORS = new Set(["xor", "circles", "moons", "spirals"]);
// Where each built-in generator puts its points before noise (see service/generators.py).
const GENERATOR_WINDOWS = {
  xor: [[-1, 1], [-1, 1]],
  circles: [[-1, 1], [-1, 1]],
  moons: [[-1, 2], [-0.5, 1]],
  spirals: [[-1, 1], [-1, 1]],
  gaussians: [[-3, 3], [-3, 3]],
  plane: [[-1, 1], [-1, 1]],
};

/** How many input features the job's data has, or null when it cannot be told. */
async function inputDimension(dataset, job) {
  if (Array.isArray(dataset.X)) return dataset.X[0]?.length ?? null;
  if (dataset.generator) {
    if (TWO_D_GENERATORS.has(dataset.generator)) return 2;
    if (dataset.generator === "sine") return 1;
    return dataset.n_features ?? 2;
  }
  if (dataset.id) {
    try {
      const stored = await api.get(`/datasets/${encodeURIComponent(dataset.id)}`);
      return stored.n_features ?? null;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      // Deleted since: the trained model still knows its input size.
      const model = await api.get(`/jobs/${encodeURIComponent(job.id)}/model`);
      return model.layer_sizes?.[0] ?? null;
    }
  }
  return null;
}

/** The job's training points, {X, y, total, sampled}, or null when none can be shown: a
 * generated dataset, or a stored one that was deleted since. */
async function trainingPoints(dataset) {
  if (Array.isArray(dataset.X) && Array.isArray(dataset.y)) {
    return { X: dataset.X, y: dataset.y, total: dataset.X.length, sampled: false };
  }
  if (!dataset.id) return null;
  const path = `/datasets/${encodeURIComponent(dataset.id)}/points`;
  try {
    return await api.get(path, { max_points: MAX_POINTS, columns: "0,1" });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // An operator's cap below MAX_POINTS: ask for the server's default (its cap) instead.
    if (error.status === 422) return api.get(path, { columns: "0,1" });
    if (error.status === 404) return null;
    throw error;
  }
}

function padded(low, high) {
  const span = high - low || 1;
  return [low - 0.15 * span, high + 0.15 * span];
}

/** The plotting window: the training points' box, else the generator's known window
 * widened by its noise, else mean ± 3σ from the model's standardization, else ±2. */
function window2d(dataset, model, points) {
  if (points?.X.length) {
    return [0, 1].map((axis) => {
      let low = Infinity;
      let high = -Infinity;
      for (const row of points.X) {
        low = Math.min(low, row[axis]);
        high = Math.max(high, row[axis]);
      }
      return padded(low, high);
    });
  }
  const known = GENERATOR_WINDOWS[dataset.generator];
  if (known) {
    const margin = 2 * (dataset.noise ?? 0.1);
    return known.map(([low, high]) => padded(low - margin, high + margin));
  }
  const stats = model.standardization;
  if (stats?.mean && stats?.std) {
    return [0, 1].map((axis) => [stats.mean[axis] - 3 * stats.std[axis], stats.mean[axis] + 3 * stats.std[axis]]);
  }
  return [[-2, 2], [-2, 2]];
}

function linspace([low, high], n) {
  return Array.from({ length: n }, (_, i) => low + ((high - low) * i) / (n - 1));
}

function classIndex(classes, label) {
  const index = (classes || []).findIndex((c) => String(c) === String(label));
  return index >= 0 ? index : Number(label) || 0;
}

function discreteScale(k) {
  const stops = [];
  for (let i = 0; i < k; i += 1) {
    stops.push([i / k, PALETTE[i % PALETTE.length]], [(i + 1) / k, PALETTE[i % PALETTE.length]]);
  }
  return stops;
}

/** Fill `card` with the boundary chart for a succeeded job, or say why there is none. */
export async function renderBoundary(card, job) {
  const dataset = job.spec?.dataset || {};
  const dimension = await inputDimension(dataset, job);
  if (dimension !== 2) return;
  card.hidden = false;
  const plot = h("div", { class: "chart chart-square", id: "boundary-chart" });
  const note = h("p", { class: "muted small", id: "boundary-note" });
  const heading = h("h2", {}, "Decision boundary (final model)");
  replace(card, h("div", { class: "card-head" }, heading,
    h("span", { class: "muted small" }, `${GRID}×${GRID} grid, POST /predict`)), plot, note);

  const [model, points] = await Promise.all([
    api.get(`/jobs/${encodeURIComponent(job.id)}/model`), trainingPoints(dataset)]);
  const [xRange, yRange] = window2d(dataset, model, points);
  const xs = linspace(xRange, GRID);
  const ys = linspace(yRange, GRID);
  const grid = [];
  for (const y of ys) for (const x of xs) grid.push([x, y]);
  const answer = await api.post(`/jobs/${encodeURIComponent(job.id)}/predict`, { X: grid });

  const regression = model.task === "regression" || (job.spec.network?.loss === "mse" && !model.classes);
  if (regression) heading.textContent = "Prediction surface (final model)";
  const classes = model.classes || [];
  const k = Math.max(classes.length, 2);
  const z = [];
  for (let row = 0; row < GRID; row += 1) {
    z.push(answer.predictions.slice(row * GRID, (row + 1) * GRID).map((p, col) => {
      if (regression) return Array.isArray(p) ? p[0] : p;
      const probabilities = answer.probabilities?.[row * GRID + col];
      // Two classes: the probability of the second, shaded like TensorFlow Playground.
      if (k === 2 && probabilities) return probabilities[1];
      return classIndex(classes, p);
    }));
  }
  const binary = !regression && k === 2 && answer.probabilities;
  const traces = [{
    type: "heatmap", x: xs, y: ys, z, opacity: regression ? 0.85 : 0.45,
    colorscale: regression ? "Viridis" : binary ? [[0, PALETTE[0]], [0.5, "#f8fafc"], [1, PALETTE[1]]] : discreteScale(k),
    // Class i sits in the middle of its colour band [i/k, (i+1)/k].
    zmin: regression ? undefined : binary ? 0 : -0.5, zmax: regression ? undefined : binary ? 1 : k - 0.5,
    showscale: Boolean(regression || binary), hoverinfo: "skip",
    colorbar: { title: { text: regression ? "prediction" : plotlyText(`P(class ${classes[1] ?? 1})`) }, thickness: 12 },
  }];
  if (points?.X.length) {
    const target = (label) => (Array.isArray(label) ? label[0] : label);
    const colors = points.y.map((label) =>
      regression ? target(label) : PALETTE[classIndex(classes, label) % PALETTE.length]);
    traces.push({
      type: "scatter", mode: "markers", name: "training data",
      x: points.X.map((r) => r[0]), y: points.X.map((r) => r[1]),
      // Labels are user strings: escaped, so Plotly shows them as text, never as markup.
      hovertext: points.y.map((label) => plotlyText(regression ? `target ${target(label)}` : `class ${label}`)),
      hoverinfo: "text",
      marker: { color: colors, size: 7, line: { color: "#0f172a", width: 1 },
        colorscale: regression ? "Viridis" : undefined },
    });
    plot.dataset.points = String(points.X.length);
    const shown = points.sampled
      ? `a fixed sample of ${points.X.length} of its ${points.total} rows`
      : `all ${points.total} rows`;
    note.textContent = `Background: the model's prediction at each grid point. Dots: the job's dataset (${shown}, any validation split included).`;
  } else {
    const why = dataset.id ? "Its dataset was deleted" : "A generated dataset's points are not stored";
    note.textContent = `Background: the model's prediction at each grid point. ${why}, so only the boundary is drawn.`;
  }
  if (!regression && !binary) {
    card.insertBefore(h("div", { class: "class-legend" }, classes.map((label, i) =>
      h("span", { class: "class-key" }, h("span", { class: "swatch", style: `background: ${PALETTE[i % PALETTE.length]}` }),
        `class ${label}`))), note);
  }
  plot.dataset.gridPoints = String(grid.length);
  await draw(plot, traces, {
    hovermode: "closest", showlegend: false,
    // Equal units on both axes; the plot area shrinks to fit instead of padding the ranges.
    xaxis: { title: { text: "x₁" }, range: xRange, constrain: "domain" },
    yaxis: { title: { text: "x₂" }, range: yRange, scaleanchor: "x", constrain: "domain" },
  });
}
