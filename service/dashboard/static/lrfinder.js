// "Find a learning rate" in the new-job form: POST /lr-finder with the form's job spec,
// draw the range test small (smoothed loss against the rate) and fill in the suggestion.
import { api } from "./api.js";
import { draw, PALETTE, purge } from "./charts.js";
import { h } from "./dom.js";
import { errorMessage } from "./format.js";

// The range swept: wide enough for every optimizer's useful rates.
const RANGE = { min_lr: 1e-5, max_lr: 10, steps: 100 };

/** A rate as the form shows it: three significant digits. */
export function roundRate(rate) {
  return Number(rate.toPrecision(3));
}

function describe(answer, rate) {
  const parts = [`Suggested ${rate}: the rate at the loss's minimum ÷ 10, from ${answer.steps_run} steps `
    + `on the ${answer.examples} training examples (batches of ${answer.batch_size}).`];
  if (answer.stop_reason === "steps") {
    parts.push("The loss was still falling at the largest rate tried, so this is only a lower bound.");
  }
  return parts.join(" ");
}

/** The fieldset; `specOf(form)` builds the job spec the finder is asked about. */
export function lrFinderFieldset(specOf) {
  const button = h("button", { type: "button", class: "button", id: "find-lr" }, "Find a learning rate");
  const status = h("p", { class: "muted small", id: "lr-finder-status" },
    "Trains a copy of the network for a few steps while the rate grows, on the training split only.");
  const chart = h("div", { class: "chart chart-small", id: "lr-chart", hidden: true });
  button.addEventListener("click", async () => {
    const form = button.form;
    button.disabled = true;
    status.className = "muted small";
    status.textContent = "Running the range test…";
    try {
      const answer = await api.post("/lr-finder", { ...specOf(form), ...RANGE });
      if (answer.suggested_learning_rate == null) {
        status.textContent = "No suggestion: the loss was never finite. Check the data and the network.";
        return;
      }
      const rate = roundRate(answer.suggested_learning_rate);
      form.elements.learning_rate.value = String(rate);
      status.textContent = describe(answer, rate);
      chart.hidden = false;
      purge(chart);
      const losses = answer.points.map((p) => p.loss);
      draw(chart, [{ type: "scatter", mode: "lines", name: "smoothed loss", x: answer.points.map((p) => p.learning_rate),
        y: losses, line: { color: PALETTE[0], width: 2 } }], {
        margin: { l: 48, r: 8, t: 6, b: 36 },
        xaxis: { type: "log", title: { text: "learning rate" } },
        yaxis: { title: { text: "loss" } },
        showlegend: false,
        hovermode: "closest",
        shapes: [{ type: "line", x0: rate, x1: rate, yref: "paper", y0: 0, y1: 1,
          line: { color: PALETTE[2], width: 2, dash: "dot" } }],
      });
    } catch (error) {
      status.className = "error-line small";
      status.textContent = `The finder could not run: ${errorMessage(error)}`;
    } finally {
      button.disabled = false;
    }
  });
  return h("fieldset", { class: "lr-finder" }, h("legend", {}, "Learning rate finder"), button, status, chart);
}
