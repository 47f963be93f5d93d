"""``training.gradient_check: true`` through the real service: HTTP, a Celery worker, SQLite.

A check that passes is stored on the job and training goes on; a check that fails fails
the job with ``gradient_check_failed`` and keeps the report. The failing case is genuine,
not staged: every ReLU of the network sits exactly on its kink (first-layer weights and
biases all zero), where the cost has no derivative — backprop uses the slope 0, the
centered difference sees half the right-hand slope, and the check says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # tests/ is not a package; make tests.support importable
    sys.path.insert(0, _ROOT)

from service.app import create_app  # noqa: E402
from service.db import transaction  # noqa: E402
from service.tenants import create_tenant_key  # noqa: E402
from tests.support.fixtures import embedded_backend, worker_process  # noqa: E402,F401
from tests.support.jobs import wait_for  # noqa: E402

pytestmark = pytest.mark.integration

DATASET = {"generator": "spirals", "n_samples": 60, "seed": 2, "n_classes": 3}


@pytest.fixture
def client(embedded_backend, worker_process):  # noqa: F811
    worker_process(embedded_backend)
    app = create_app({"settings": embedded_backend.settings()})
    with transaction(embedded_backend.factory) as session:
        key = create_tenant_key(session, "gradient-check")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def run(client, body):
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]

    def finished():
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(finished, timeout=120, what=f"job {job_id} to finish")


def test_a_passing_check_is_stored_and_training_runs(client):
    body = {
        "network": {
            "layers": [{"units": 6, "activation": "tanh"}, {"units": 5, "activation": "sigmoid"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": DATASET,
        "training": {"epochs": 15, "l2": 0.3, "seed": 4, "gradient_check": True},
    }
    job = run(client, body)
    assert job["status"] == "succeeded", job["error"]
    report = job["gradient_check"]
    assert report["passed"] is True
    assert report["relative_difference"] < 1e-7
    assert report["l2"] == 0.3
    assert report["n_parameters"] == report["n_checked"] == (2 + 1) * 6 + (6 + 1) * 5 + (5 + 1) * 3
    assert report["n_examples"] == 60
    assert [p["layer"] for p in report["per_layer"]] == [1, 2, 3]
    assert job["progress"]["epoch"] == 15


def test_without_the_flag_no_check_is_made(client):
    body = {
        "network": {"layers": [{"units": 4}], "output": {"activation": "softmax"},
                    "loss": "cross_entropy"},
        "dataset": DATASET,
        "training": {"epochs": 3},
    }  # fmt: skip
    job = run(client, body)
    assert job["status"] == "succeeded", job["error"]
    assert job["gradient_check"] is None


def test_a_failing_check_fails_the_job_with_its_report(client):
    on_the_kink = [{"W": [[0.0] * 4] * 2, "b": [0.0] * 4}]  # every z^(2) = 0 exactly
    output = [{"W": [[0.5, -0.3, 0.2], [0.1, 0.4, -0.6], [-0.2, 0.3, 0.7], [0.6, -0.1, 0.2]],
               "b": [0.0, 0.0, 0.0]}]  # fmt: skip
    body = {
        "network": {
            "layers": [{"units": 4, "activation": "relu"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
            "init": {"weights": {"format": "wb", "layers": on_the_kink + output}},
        },
        "dataset": DATASET,
        "training": {"epochs": 10, "gradient_check": True},
    }
    job = run(client, body)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "gradient_check_failed"
    assert job["error"]["epoch"] is None
    report = job["gradient_check"]
    assert report["passed"] is False
    assert report["relative_difference"] > 1e-7
    assert report["worst"]["layer"] == 1  # the layer whose units sit on the kink
    assert report["worst"]["analytic"] == 0.0
    assert report["worst"]["numerical"] != 0.0
    assert "gradient check failed" in job["error"]["message"]
    assert "Θ^(1)" in job["error"]["message"]
    # it failed before training: no epoch was run
    curve = client.get(f"/api/v1/jobs/{job['id']}/curve").get_json()
    assert curve["points"] == []
