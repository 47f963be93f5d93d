"""Batches end to end: the real API (in process) on PostgreSQL, real Celery worker
processes on Redis. Nothing is mocked: jobs are sent after commit, claimed, trained, and
read back through the HTTP API."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from service.app import create_app
from service.db import transaction
from service.models import Job
from service.schemas.names import FINISHED
from service.tenants import create_tenant_key
from service.timeutil import as_utc
from tests.support.fixtures import (  # noqa: F401 (fixtures)
    embedded_backend,
    postgres_server,
    production_backend,
    redis_server,
    worker_process,
)
from tests.support.jobs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE: dict[str, Any] = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 64, "seed": 0, "validation_split": 0.25},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 40, "seed": 1},
}
GRID = {"training.optimizer.learning_rate": [0.01, 0.1], "network.layers.0.units": [2, 4, 8]}
# Epochs that keep a tiny job busy for a second or two, so others can overtake or cancel it.
LONG_EPOCHS = 4000


@contextlib.contextmanager
def api_client(backend):
    """A test client of the real app on ``backend``, authenticated as one tenant;
    ``other_auth`` holds another tenant's headers."""
    app = create_app({"settings": backend.settings()})
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "e2e-batches")
        other = create_tenant_key(session, "e2e-batches-other")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    client.other_auth = {"Authorization": f"Bearer {other}"}
    try:
        yield client
    finally:
        app.extensions["deltaflow"].engine.dispose()


@pytest.fixture
def api(production_backend):  # noqa: F811
    with api_client(production_backend) as client:
        yield client


def submit(client, body: dict[str, Any], **kwargs: Any):
    """POST a batch keeping the grid's key order (``json=`` of the test client sorts keys)."""
    return client.post(
        "/api/v1/batches", data=json.dumps(body), content_type="application/json", **kwargs
    )


def jobs_of(backend, batch_id: str) -> list[Job]:
    with transaction(backend.factory) as session:
        rows = list(
            session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index))
        )
        session.expunge_all()
        return rows


def finished(backend, batch_id: str) -> list[Job] | None:
    rows = jobs_of(backend, batch_id)
    return rows if rows and all(job.status in FINISHED for job in rows) else None


def test_a_grid_runs_on_two_workers_and_its_curves_stream_once(
    api,
    production_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    workers = [worker_process(production_backend) for _ in range(2)]
    response = submit(api, {"name": "grid", "base": BASE, "grid": GRID})
    assert response.status_code == 202
    batch = response.get_json()
    assert batch["size"] == 6
    url = f"/api/v1/batches/{batch['id']}"

    # Poll the batch curves while the jobs run: each epoch must arrive exactly once.
    seen: dict[str, list[int]] = {job_id: [] for job_id in batch["job_ids"]}
    cursor = None

    def poll_curves() -> bool:
        nonlocal cursor
        page = api.get(url + "/curves", query_string={"cursor": cursor} if cursor else {})
        assert page.status_code == 200
        body = page.get_json()
        for job in body["jobs"]:
            seen[job["id"]].extend(point["epoch"] for point in job["points"])
        cursor = body["next_cursor"]
        return body["complete"]

    wait_for(poll_curves, timeout=120, interval=0.1, what="the batch curves to complete")

    summary = api.get(url + "?metric=val_loss&mode=min").get_json()
    assert summary["counts"]["succeeded"] == 6
    assert summary["progress"] == {"finished": 6, "total": 6, "fraction": 1.0}
    varied = [
        (j["params"]["training.optimizer.learning_rate"], j["params"]["network.layers.0.units"])
        for j in summary["jobs"]
    ]
    assert varied == [(lr, units) for lr in (0.01, 0.1) for units in (2, 4, 8)]
    for job_id in batch["job_ids"]:
        job = api.get(f"/api/v1/jobs/{job_id}").get_json()
        assert job["status"] == "succeeded"
        assert job["queue"] == "batch"
        assert (
            job["spec"]["network"]["layers"][0]["units"] == job["params"]["network.layers.0.units"]
        )
        assert seen[job_id] == list(range(1, 41))
    losses = {j["id"]: j["metrics"]["val_loss"] for j in summary["jobs"]}
    assert summary["best"] == {"id": min(losses, key=losses.get), "value": min(losses.values())}
    # The jobs fanned out: each worker process ran some of them.
    for worker in workers:
        assert re.search(r"Task deltaflow\.train\[[^\]]+\] succeeded", worker.log()), worker.log()


def test_cancel_mid_way_leaves_no_job_running(
    api,
    production_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    for _ in range(2):
        worker_process(production_backend)
    base = copy.deepcopy(BASE)
    base["training"]["epochs"] = LONG_EPOCHS
    body = {"name": "to cancel", "base": base, "grid": {"training.seed": list(range(6))}}
    batch = submit(api, body).get_json()

    def some_running() -> bool:
        return any(
            j.status == "running" and j.epoch > 0 for j in jobs_of(production_backend, batch["id"])
        )

    wait_for(some_running, timeout=60, what="a batch job to be training")
    response = api.post(f"/api/v1/batches/{batch['id']}/cancel")
    assert response.status_code == 202
    assert response.get_json()["cancelled"]
    rows = wait_for(
        lambda: finished(production_backend, batch["id"]), timeout=60, what="the batch to end"
    )
    statuses = [job.status for job in rows]
    assert "running" not in statuses
    assert "cancelling" not in statuses
    assert statuses.count("cancelled") >= 4
    interrupted = [j for j in rows if j.status == "cancelled" and 0 < j.epoch < LONG_EPOCHS]
    assert interrupted, "a running job should have stopped part-way"
    # The workers are free again: a new single job runs to the end.
    single = api.post("/api/v1/jobs", json=BASE).get_json()
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{single['id']}").get_json()["status"] == "succeeded",
        timeout=60,
        what="a job after the cancel",
    )


def test_a_single_job_overtakes_a_large_batch(
    api,
    production_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    worker_process(production_backend)  # one slot: the queues compete for it
    base = copy.deepcopy(BASE)
    base["training"]["epochs"] = LONG_EPOCHS // 4
    body = {"name": "large", "base": base, "grid": {"training.seed": list(range(12))}}
    batch = submit(api, body).get_json()
    wait_for(
        lambda: any(j.status == "running" for j in jobs_of(production_backend, batch["id"])),
        timeout=60,
        what="the batch to start",
    )
    single = api.post("/api/v1/jobs", json=BASE).get_json()
    assert single["queue"] == "interactive"
    wait_for(
        lambda: api.get(f"/api/v1/jobs/{single['id']}").get_json()["status"] == "succeeded",
        timeout=120,
        what="the single job",
    )
    stamp = api.get(f"/api/v1/jobs/{single['id']}").get_json()["started_at"]
    started = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    rows = jobs_of(production_backend, batch["id"])
    # When the single job started, at most the batch jobs already on the worker had run:
    # the rest of the batch was still waiting behind it.
    begun_before = [j for j in rows if j.started_at is not None and as_utc(j.started_at) < started]
    assert len(begun_before) <= 2, [j.started_at for j in rows]
    api.post(f"/api/v1/batches/{batch['id']}/cancel")
    wait_for(lambda: finished(production_backend, batch["id"]), timeout=60, what="the cancel")


def test_another_tenant_cannot_see_or_cancel_a_batch(api, production_backend):  # noqa: F811
    batch = api.post(
        "/api/v1/batches", json={"name": "mine", "base": BASE, "grid": GRID}
    ).get_json()
    url = f"/api/v1/batches/{batch['id']}"
    assert api.get(url, headers=api.other_auth).status_code == 404
    assert api.get(url + "/curves", headers=api.other_auth).status_code == 404
    assert api.post(url + "/cancel", headers=api.other_auth).status_code == 404
    assert api.get("/api/v1/batches", headers=api.other_auth).get_json()["items"] == []
    assert {j.status for j in jobs_of(production_backend, batch["id"])} == {"queued"}
    api.post(url + "/cancel")


def test_a_grid_completes_on_the_embedded_default(embedded_backend, worker_process):  # noqa: F811
    """SQLite + the filesystem broker (what ``deltaflow up`` runs): same batch, same result."""
    worker_process(embedded_backend)
    with api_client(embedded_backend) as api:
        batch = submit(api, {"name": "embedded", "base": BASE, "grid": GRID}).get_json()
        rows = wait_for(
            lambda: finished(embedded_backend, batch["id"]), timeout=120, what="the batch"
        )
        assert [job.status for job in rows] == ["succeeded"] * 6
        assert [job.epoch for job in rows] == [40] * 6
        curves = api.get(f"/api/v1/batches/{batch['id']}/curves").get_json()
        assert curves["complete"]
        assert [len(job["points"]) for job in curves["jobs"]] == [40] * 6
        varied = [
            (job.params["training.optimizer.learning_rate"], job.params["network.layers.0.units"])
            for job in rows
        ]
        assert varied == [(lr, units) for lr in (0.01, 0.1) for units in (2, 4, 8)]


def test_asha_stops_weak_trials_on_real_workers(
    api,
    production_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    """Each worker's reaper runs the scheduler pass: trials whose validation loss falls
    behind at a rung are stopped part-way, the strong ones run to the end."""
    for _ in range(2):
        worker_process(production_backend)
    base = copy.deepcopy(BASE)
    base["training"]["epochs"] = LONG_EPOCHS
    body = {
        "name": "asha",
        "base": base,
        "grid": {"training.optimizer.learning_rate": [0.05, 1e-5], "training.seed": [1, 2, 3, 4]},
        "scheduler": {
            "name": "asha",
            "metric": "val_loss",
            "min_epochs": 100,
            "reduction_factor": 3,
        },
    }
    batch = submit(api, body).get_json()
    wait_for(lambda: finished(production_backend, batch["id"]), timeout=120, what="the batch")
    summary = api.get(f"/api/v1/batches/{batch['id']}?metric=val_loss").get_json()
    stopped = [job for job in summary["jobs"] if job["stopped_by_scheduler"]]
    assert stopped, summary["jobs"]
    for job in stopped:
        decision = job["stopped_by_scheduler"]
        assert job["status"] == "cancelled"
        assert decision["epoch"] <= job["epoch"] < LONG_EPOCHS
        assert decision["of"] >= 3
        assert decision["rank"] > max(1, decision["of"] // 3)
    assert summary["counts"]["running"] == summary["counts"]["cancelling"] == 0
    best = next(job for job in summary["jobs"] if job["id"] == summary["best"]["id"])
    assert best["params"]["training.optimizer.learning_rate"] == 0.05
    # The good learning rate ran first (grid order), so every weak trial met a full rung.
    weak = [j for j in summary["jobs"] if j["params"]["training.optimizer.learning_rate"] == 1e-5]
    assert all(job["stopped_by_scheduler"] for job in weak)
