"""A sweep in one view: every job's curve overlaid, the results table, the best job."""

from __future__ import annotations

import re

import pytest

from .conftest import screenshot
from .specs import long_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RATES = [0.003, 0.03, 0.3]
EPOCHS = 40


def test_batch_view_shows_every_job(page, server):
    base = {
        "network": {
            "layers": [{"units": 8, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"generator": "moons", "n_samples": 200, "seed": 0, "validation_split": 0.25},
        "training": {"optimizer": {"name": "adam"}, "epochs": EPOCHS},
    }
    created = server.api(
        "POST",
        "/batches",
        json={
            "name": "learning rates",
            "base": base,
            "grid": {"training.optimizer.learning_rate": RATES},
        },
    )
    assert created.status_code == 202, created.text
    batch = created.json()
    assert len(batch["job_ids"]) == len(RATES)

    curve_requests: list[str] = []
    summary_requests: list[str] = []
    per_job_requests: list[str] = []

    def on_request(request) -> None:
        path = request.url.split("?")[0]
        if path.endswith(f"/batches/{batch['id']}/curves"):
            curve_requests.append(request.url)
        elif path.endswith(f"/batches/{batch['id']}"):
            summary_requests.append(request.url)
        if "/api/v1/jobs/" in request.url:
            per_job_requests.append(request.url)

    page.on("request", on_request)
    page.goto(f"{server.url}/#/batches/{batch['id']}")
    rows = page.locator("#batch-table tbody tr")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#batch-table tbody tr')]"
        f".filter(r => r.dataset.status === 'succeeded').length === {len(RATES)}",
        timeout=180_000,
    )
    # Every job is in the table and on the chart, each with its whole curve.
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == sorted(
        batch["job_ids"]
    )
    page.wait_for_function(
        f"() => document.querySelector('#batch-chart').dataset.points === '{EPOCHS * len(RATES)}'"
    )
    lengths = page.eval_on_selector("#batch-chart", "el => el.data.map(t => t.x.length)")
    assert lengths == [EPOCHS] * len(RATES)

    # The best job by validation loss, as the API ranks it, is the highlighted row.
    summary = server.api(
        "GET", f"/batches/{batch['id']}", params={"metric": "val_loss", "mode": "min"}
    ).json()
    assert (
        page.locator("#batch-table tr.best").get_attribute("data-job-id") == summary["best"]["id"]
    )
    widths = page.eval_on_selector("#batch-chart", "el => el.data.map(t => t.line.width)")
    assert sorted(widths) == [1.5, 1.5, 4]

    # Sorting by the varied parameter orders the rows by it, both ways.
    header = "th[data-key='param:training.optimizer.learning_rate']"
    by_id = {
        job["id"]: job["params"]["training.optimizer.learning_rate"] for job in summary["jobs"]
    }
    page.click(header)
    ascending = [by_id[i] for i in rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")]
    assert ascending == sorted(RATES)
    page.click(header)
    descending = [by_id[i] for i in rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")]
    assert descending == sorted(RATES, reverse=True)
    screenshot(page, "batch")

    # The job list filtered by this batch shows exactly its jobs.
    page.goto(f"{server.url}/#/jobs")
    page.wait_for_selector("#jobs-table")
    page.select_option("#batch-filter", batch["id"])
    page.wait_for_url(re.compile(rf".*batch_id={batch['id']}$"))
    page.wait_for_function(
        f"() => document.querySelectorAll('#jobs-table tbody tr').length === {len(RATES)}"
    )
    listed = page.eval_on_selector_all(
        "#jobs-table tbody tr", "rows => rows.map(r => [r.dataset.jobId, r.dataset.batchId])"
    )
    assert sorted(listed) == sorted([job_id, batch["id"]] for job_id in batch["job_ids"])

    # One batch-curves request per poll for the whole sweep, never one per job.
    assert curve_requests
    assert abs(len(curve_requests) - len(summary_requests)) <= 1
    assert per_job_requests == [], "the batch view never polls jobs one by one"


def test_a_sweep_submitted_from_the_form(page, server):
    page.goto(f"{server.url}/#/batches")
    page.click("#new-sweep-toggle")
    page.fill("#new-sweep input[name=name]", "form sweep")
    page.select_option("#new-sweep select[name=vary_path_0]", "training.optimizer.learning_rate")
    page.fill("#new-sweep input[name=vary_values_0]", "0.01, 0.1")
    page.select_option("#new-sweep select[name=vary_path_1]", "network.layers.0.units")
    page.fill("#new-sweep input[name=vary_values_1]", "4, 8")
    page.select_option("#new-sweep select[name=generator]", "circles")
    page.fill("#new-sweep input[name=layers]", "6")
    page.fill("#new-sweep input[name=epochs]", "15")
    screenshot(page, "batches-form")
    page.click("#new-sweep button[type=submit]")
    page.wait_for_url(re.compile(r".*#/batches/[0-9a-f]+$"))
    batch_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#batch-table tbody tr')]"
        ".filter(r => r.dataset.status === 'succeeded').length === 4",
        timeout=180_000,
    )
    summary = server.api("GET", f"/batches/{batch_id}").json()
    assert summary["name"] == "form sweep"
    params = sorted(
        (job["params"]["training.optimizer.learning_rate"], job["params"]["network.layers.0.units"])
        for job in summary["jobs"]
    )
    assert params == [(0.01, 4), (0.01, 8), (0.1, 4), (0.1, 8)]


def test_cancel_a_whole_batch_from_its_page(page, server):
    base = long_job("sweep to cancel")
    del base["name"]
    created = server.api(
        "POST",
        "/batches",
        json={"name": "to cancel", "base": base, "grid": {"training.seed": [1, 2]}},
    )
    assert created.status_code == 202, created.text
    batch = created.json()
    try:
        page.goto(f"{server.url}/#/batches/{batch['id']}")
        page.wait_for_selector("#cancel-batch >> visible=true")
        page.click("#cancel-batch")
        page.wait_for_function(
            "() => (rows => rows.length === 2 && rows.every(r => r.dataset.status === 'cancelled'))"
            "([...document.querySelectorAll('#batch-table tbody tr')])",
            timeout=60_000,
        )
        statuses = {server.job(job_id)["status"] for job_id in batch["job_ids"]}
        assert statuses == {"cancelled"}
        assert page.locator("#cancel-batch").is_hidden()
    finally:
        server.api("POST", f"/batches/{batch['id']}/cancel")
