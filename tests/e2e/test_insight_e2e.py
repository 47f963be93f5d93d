"""Why training fails, end to end: the API (Flask test client) and one real Celery worker
process on the embedded backend (SQLite + filesystem broker).

- ``POST /lr-finder`` suggests a rate; a job trained with it (recording gradients and
  activations) learns well on the validation split the finder never saw, and its
  diagnostics raise no warning or error;
- ``training.record.activations`` reaches the worker: every stored point carries per-layer
  statistics, which default curve answers leave out;
- a job that blows up is ``diverged`` — from its error (non-finite, no point stored) and
  from its curve (a loss that rose by orders of magnitude while staying finite).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import select

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # tests/ is not a package; make tests.support importable
    sys.path.insert(0, _ROOT)

from service.app import create_app  # noqa: E402
from service.db import transaction  # noqa: E402
from service.models import CurvePoint  # noqa: E402
from service.tenants import create_tenant_key  # noqa: E402
from tests.support.fixtures import embedded_backend  # noqa: E402,F401
from tests.support.jobs import blow_up_spec, wait_for  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

pytestmark = pytest.mark.integration

MOONS = {
    "network": {
        "layers": [{"units": 16, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {
        "generator": "moons",
        "n_samples": 300,
        "noise": 0.15,
        "seed": 5,
        "validation_split": 0.3,
        "standardize": True,
    },
    "training": {
        "optimizer": {"name": "adam"},
        "epochs": 100,
        "batch_size": 32,
        "seed": 1,
        "record": {"grad_norms": True, "activations": True},
    },
}


@pytest.fixture(scope="module")
def api(embedded_backend):  # noqa: F811
    backend = embedded_backend
    worker = WorkerProcess(backend.env(), backend.log_dir).start()
    app = create_app({"settings": backend.settings()})
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "insight")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    yield client, backend
    worker.stop(timeout=10)
    app.extensions["deltaflow"].engine.dispose()


def run(client, spec: dict) -> dict:
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]

    def finished():
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(finished, timeout=120, what=f"job {job_id}")


def findings(client, job_id: str) -> list[dict]:
    response = client.get(f"/api/v1/jobs/{job_id}/diagnostics")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["findings"]


def test_the_suggested_rate_trains_well_and_activations_are_recorded(api):
    client, backend = api
    finder = client.post("/api/v1/lr-finder", json={**MOONS, "min_lr": 1e-5, "max_lr": 10.0})
    assert finder.status_code == 200, finder.get_json()
    suggested = finder.get_json()["suggested_learning_rate"]
    assert finder.get_json()["examples"] == 210  # the training split only

    spec = {**MOONS, "training": {**MOONS["training"], "optimizer": {"name": "adam"}}}
    spec["training"]["optimizer"]["learning_rate"] = suggested
    job = run(client, spec)

    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["val_accuracy"] >= 0.9  # 90 examples the finder never saw
    alarms = [f for f in findings(client, job["id"]) if f["severity"] != "info"]
    assert alarms == []

    with transaction(backend.factory) as session:
        stored = session.scalars(
            select(CurvePoint.activation_stats).where(CurvePoint.job_id == job["id"])
        ).all()
    assert len(stored) == 100
    for layers in stored:
        assert [s["layer"] for s in layers] == [1, 2]
        hidden = layers[0]
        assert 0.0 <= hidden["saturated_fraction"] <= 1.0
        assert hidden["dead_fraction"] is None  # tanh units do not die
        assert -1.0 <= hidden["mean"] <= 1.0
        assert hidden["std"] >= 0.0
    curve = client.get(f"/api/v1/jobs/{job['id']}/curve").get_json()
    assert all("activation_stats" not in point for point in curve["points"])
    assert "activation_stats" not in job["metrics"]


def test_a_job_that_blows_up_is_diverged(api):
    client, _ = api
    failed = run(client, blow_up_spec(3.0))
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "non_finite"
    first = findings(client, failed["id"])[0]
    assert (first["code"], first["severity"]) == ("diverged", "error")
    assert first["epoch"] == failed["error"]["epoch"]

    climbing = run(client, blow_up_spec(2.3))
    assert climbing["status"] == "succeeded"  # finite all along
    first = findings(client, climbing["id"])[0]
    assert (first["code"], first["severity"]) == ("diverged", "error")
    assert first["evidence"]["factor"] >= 3
