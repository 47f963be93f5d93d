"""A PBT population's lineage on the batch page: an arrow for each exploit, from the parent
at the copied epoch to the trial that took its checkpoint.

PBT needs its population training side by side, and ``deltaflow up`` runs one job at a
time, so this module serves the real app (SQLite, filesystem broker) with a real worker of
four pool children instead of the session's ``deltaflow up``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.app import create_app
from service.db import transaction
from service.tenants import create_tenant_key
from tests.support.fixtures import Backend, embedded_backend  # noqa: F401 (fixture)
from tests.support.jobs import wait_for
from tests.support.live import LiveServer
from tests.support.workers import WorkerProcess

from .conftest import Server, _session, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BASE = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 64, "seed": 0, "validation_split": 0.25},
    "training": {"optimizer": {"name": "adam"}, "epochs": 1500, "seed": 1},
}


@pytest.fixture(scope="module")
def server(embedded_backend: Backend) -> Iterator[Server]:  # noqa: F811
    app = create_app({"settings": embedded_backend.settings()})
    with transaction(embedded_backend.factory) as session:
        key = create_tenant_key(session, "browser-lineage")
    live = LiveServer(app).start()
    worker = WorkerProcess(embedded_backend.env(), embedded_backend.log_dir, concurrency=4)
    worker.start()
    try:
        with _session(key) as http:
            yield Server(url=live.url, key=key, http=http)
    finally:
        worker.stop(timeout=10)
        live.stop()
        app.extensions["deltaflow"].engine.dispose()


def test_the_batch_page_draws_who_copied_whom(page, server):
    body = {
        "name": "pbt",
        "base": BASE,
        "grid": {"training.optimizer.learning_rate": [0.05, 0.02, 1e-4, 3e-5]},
        "scheduler": {"name": "pbt", "interval_epochs": 100, "quantile": 0.25, "seed": 1},
    }
    created = server.api("POST", "/batches", json=body)
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]

    def finished_with_lineage():
        summary = server.api("GET", f"/batches/{batch_id}").json()
        done = summary["counts"]["succeeded"] == 4
        return summary if done and summary["lineage"] else None

    summary = wait_for(finished_with_lineage, timeout=240, interval=0.5, what="exploits")
    page.goto(f"{server.url}/#/batches/{batch_id}")
    lineage = summary["lineage"]
    page.wait_for_function(
        f"document.querySelector('#batch-lineage')?.dataset.exploits === '{len(lineage)}'"
    )
    arrows = page.locator("#batch-lineage line.lineage-exploit").evaluate_all(
        "ls => ls.map(l => [l.dataset.child, l.dataset.parent, Number(l.dataset.epoch)])"
    )
    assert arrows == [[s["job_id"], s["parent"], s["parent_epoch"]] for s in lineage]
    # One line per trial, and each exploited trial's origin names its parent in the table.
    assert page.locator("#batch-lineage line.lineage-trial").count() == 4
    last = {s["job_id"]: s for s in lineage}
    for job_id, step in last.items():
        cell = page.locator(f"#batch-table tr[data-job-id='{job_id}'] td").nth(-2)
        assert cell.inner_text().startswith(f"pbt ← {step['parent'][:8]}")
    page.wait_for_function("document.querySelector('#batch-chart').dataset.jobs === '4'")
    screenshot(page, "batch-lineage")
