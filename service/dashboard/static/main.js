// Boot: the API-key dialog, the navigation and the hash router.
import { getKey, setKey } from "./api.js";
import { h, replace } from "./dom.js";
import { parseRoute } from "./router.js";
import { renderBatch } from "./batch.js";
import { renderBatches } from "./batches.js";
import { renderExplainer } from "./explain.js";
import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";

const VIEWS = {
  jobs: renderJobs,
  job: renderJob,
  batches: renderBatches,
  batch: renderBatch,
  explain: renderExplainer,
};

const view = document.getElementById("view");
let teardown = null;

function showKeyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  input.value = getKey();
  if (!dialog.open) dialog.showModal();
  input.focus();
}

function wireKeyDialog() {
  const form = document.getElementById("key-form");
  form.addEventListener("submit", () => {
    setKey(document.getElementById("key-input").value);
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    setKey("");
    document.getElementById("key-dialog").close();
  });
  document.getElementById("key-button").addEventListener("click", showKeyDialog);
  window.addEventListener("deltaflow:unauthorized", showKeyDialog);
  window.addEventListener("deltaflow:key", () => {
    updateKeyButton();
    route();
  });
}

function updateKeyButton() {
  const button = document.getElementById("key-button");
  const key = getKey();
  button.textContent = key ? `Key ${key.slice(0, 6)}…` : "Enter API key";
  button.classList.toggle("missing", !key);
}

function route() {
  if (teardown) teardown();
  teardown = null;
  const current = parseRoute(window.location.hash);
  for (const link of document.querySelectorAll(".nav a")) {
    const section = current.name === "job" ? "jobs" : current.name === "batch" ? "batches" : current.name;
    link.classList.toggle("active", link.dataset.route === section);
  }
  const render = VIEWS[current.name];
  if (!render) {
    replace(view, h("div", { class: "card empty" }, "Nothing here. ", h("a", { href: "#/jobs" }, "Go to jobs")));
    return;
  }
  if (!getKey()) {
    replace(view, h("div", { class: "card empty" },
      h("h2", {}, "Welcome to Deltaflow"),
      h("p", {}, "Enter an API key to see your jobs and batches."),
      h("button", { class: "button primary", type: "button", onclick: showKeyDialog }, "Enter API key")));
    showKeyDialog();
    return;
  }
  replace(view);
  teardown = render(view, current) || null;
}

function boot() {
  wireKeyDialog();
  updateKeyButton();
  if (!window.location.hash) window.location.replace("#/jobs");
  window.addEventListener("hashchange", route);
  route();
}

boot();
