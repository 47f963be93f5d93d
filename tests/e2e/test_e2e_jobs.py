"""Submit over HTTP, train in a real Celery worker process, read the results over HTTP.

Runs on every backend: embedded (SQLite + filesystem broker), production (PostgreSQL +
Redis) and PostgreSQL + RabbitMQ, with one worker per module; tests that stop or kill
workers are in test_e2e_reliability.py (and, on RabbitMQ too, in tests/faults).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from service.queue import send_train
from tests.support.jobs import (
    curve_epochs,
    diverging_spec,
    job_row,
    tiny_spec,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module", params=["embedded", "production", "rabbitmq"])
def backend(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """This module also runs on RabbitMQ (the shared fixture has the two others)."""
    return request.getfixturevalue(f"{request.param}_backend")


def test_readyz_checks_the_configured_broker(api, backend):
    response = api.client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"]["broker"] == "ok"


def test_a_job_trains_and_its_model_predicts(api, backend, running_worker):
    spec = tiny_spec(epochs=150)
    spec["dataset"]["standardize"] = True
    job_id = api.submit(spec)
    job = api.wait(job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 1
    epochs = [point["epoch"] for point in api.curve(job_id)]
    assert epochs == list(range(1, 151))
    model = api.get(f"/jobs/{job_id}/model").get_json()
    assert model["standardization"] is not None
    X = [[0.1, 0.2], [-0.5, 0.4], [0.9, -0.3]]
    response = api.post(f"/jobs/{job_id}/predict", json={"X": X})
    assert response.status_code == 200, response.get_json()
    predictions = response.get_json()["predictions"]
    assert len(predictions) == 3
    assert set(predictions) <= {0, 1, 2}


def test_a_stored_dataset_is_cached_by_hash_and_its_labels_come_back(api, backend, running_worker):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    response = api.post(
        "/datasets",
        json={"name": "signs", "task": "classification", "X": X.tolist(), "y": labels.tolist()},
    )
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    spec = tiny_spec(epochs=200)
    spec["dataset"] = {"id": dataset["id"], "standardize": True}
    job_id = api.submit(spec)
    job = api.wait(job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    cached = list((backend.data_dir / "cache").glob("*.npz"))
    assert len(cached) == 1
    assert hashlib.sha256(cached[0].read_bytes()).hexdigest() == cached[0].stem
    response = api.post(f"/jobs/{job_id}/predict", json={"X": [[3.0, 3.0, 0.0], [-3.0, -3.0, 0.0]]})
    assert response.get_json()["predictions"] == ["yes", "no"]


def test_a_duplicate_delivery_trains_once(api, backend, running_worker):
    job_id = api.submit(tiny_spec(epochs=80))
    settings = backend.settings()
    send_train(settings, job_id, "interactive")  # the same message, twice more
    send_train(settings, job_id, "interactive")
    job = api.wait(job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded"
    assert job["attempt"] == 1  # only one delivery could claim it
    assert curve_epochs(backend.factory, job_id) == list(range(1, 81))


def test_cancel_stops_a_running_job(api, backend, running_worker):
    job_id = api.submit(tiny_spec(epochs=100_000))
    wait_for(lambda: api.job(job_id)["progress"]["epoch"] > 0, what="the job to make progress")
    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202
    job = api.wait(job_id, {"cancelled", "succeeded", "failed"})
    assert job["status"] == "cancelled"
    row = job_row(backend.factory, job_id)
    assert row.epoch < 100_000
    assert curve_epochs(backend.factory, job_id) == list(range(1, row.epoch + 1))


def test_a_diverging_job_fails_with_a_clear_error(api, backend, running_worker):
    job_id = api.submit(diverging_spec())
    job = api.wait(job_id, {"succeeded", "failed"})
    assert job["status"] == "failed"
    assert job["error"]["type"] == "non_finite"
    assert job["error"]["message"].startswith(f"training diverged at epoch {job['error']['epoch']}")


def test_an_inline_job_trains_from_its_stored_dataset(api, backend, running_worker):
    """Inline X and y become a content-addressed dataset (issue 11); the worker loads it
    like any stored one, and the same data sent again names the same dataset."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2))
    labels = np.where(X[:, 0] > X[:, 1], "left", "right").tolist()
    spec = tiny_spec(epochs=120)
    spec["dataset"] = {"X": X.round(6).tolist(), "y": labels, "standardize": True}
    job_id = api.submit(spec)
    again = api.submit(spec)
    job = api.wait(job_id, {"succeeded", "failed"})
    assert job["status"] == "succeeded", job["error"]
    assert job["spec"]["dataset"]["inline"] is True
    assert api.job(again)["spec"]["dataset"]["id"] == job["spec"]["dataset"]["id"]
    response = api.post(f"/jobs/{job_id}/predict", json={"X": [[3.0, -3.0], [-3.0, 3.0]]})
    assert response.status_code == 200, response.get_json()
    assert set(response.get_json()["predictions"]) <= {"left", "right"}
    api.wait(again, {"succeeded", "failed"})
