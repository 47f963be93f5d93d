"""GET /api/v1/jobs/{id}/diagnostics over the Flask test client.

Curve points are written as a worker's flush writes them (``curve_store.insert_points`` with
``EpochStats.to_point()`` of a real engine run, or hand-built points for the bounded
read); real workers train the diverging and the healthy job in tests/e2e/test_insight_e2e.py.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from service import curve_store
from service.app import create_app
from service.build import prepare
from service.datasets import spec_arrays
from service.db import make_engine, make_sessionmaker, transaction
from service.diagnostics import EDGE_POINTS, read_points
from service.schemas.records import point_from_stats
from worker.nn.diagnostics import diagnose
from worker.nn.run_curve import RunContext

JOBS = "/api/v1/jobs"


def submit(client, auth, spec) -> dict:
    response = client.post(JOBS, json=spec, headers=auth)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def diagnostics(client, auth, job_id, **headers):
    return client.get(f"{JOBS}/{job_id}/diagnostics", headers={**auth, **headers})


def train_in_process(sessions, job: dict, limits) -> None:
    """Train the job's stored spec as the runner builds it and flush every point."""
    run = prepare(job["spec"], spec_arrays(job["spec"]["dataset"], limits))
    points = [point_from_stats(stats) for stats in run.trainer.epochs()]
    with transaction(sessions) as session:
        curve_store.insert_points(session, job["id"], points)


def test_a_healthy_finished_job_has_no_warning_or_error(
    client, auth, spec, sessions, set_job, settings
):
    spec["dataset"] = {"generator": "moons", "n_samples": 200, "seed": 3, "validation_split": 0.2}
    spec["training"] = {
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "epochs": 80,
        "record": {"grad_norms": True, "activations": True},
    }
    job = submit(client, auth, spec)
    train_in_process(sessions, job, settings.limits)
    set_job(job["id"], status="succeeded", epoch=80)
    with sessions() as session:
        stored, _ = read_points(session, job["id"], 1000)
    assert all(p["activation_stats"] and p["grad_norms"] for p in stored)  # the rules had data

    response = diagnostics(client, auth, job["id"])

    assert response.status_code == 200
    body = response.get_json()
    assert body["job_id"] == job["id"]
    assert body["status"] == "succeeded"
    assert body["epochs"] == body["epochs_read"] == 80
    assert [f for f in body["findings"] if f["severity"] != "info"] == []


def test_a_non_finite_failure_is_diverged_and_the_answer_has_an_etag(
    client, auth, spec, set_job, add_points
):
    job = submit(client, auth, spec)
    add_points(job["id"], range(1, 8))
    error = {"type": "non_finite", "message": "loss is nan", "epoch": 8}
    set_job(job["id"], status="failed", error=error)

    response = diagnostics(client, auth, job["id"])

    assert response.status_code == 200
    first = response.get_json()["findings"][0]
    assert (first["code"], first["severity"], first["epoch"]) == ("diverged", "error", 8)
    assert "0.002" in first["message"]  # a tenth of the spec's 0.02, as a number to try
    etag = response.headers["ETag"]
    again = diagnostics(client, auth, job["id"], **{"If-None-Match": etag})
    assert again.status_code == 304
    set_job(job["id"], error={**error, "epoch": 7})  # any write of the job changes the tag
    assert diagnostics(client, auth, job["id"], **{"If-None-Match": etag}).status_code == 200


def test_a_running_job_is_diagnosed_from_the_points_so_far(client, auth, spec, set_job, add_points):
    job = submit(client, auth, spec)
    assert diagnostics(client, auth, job["id"]).get_json()["findings"] == []  # queued, no points
    set_job(job["id"], status="running")
    add_points(job["id"], range(1, 4))
    body = diagnostics(client, auth, job["id"]).get_json()
    assert body["status"] == "running"
    assert body["epochs_read"] == 3


def test_another_tenants_job_is_not_found(client, auth, make_key, spec):
    job = submit(client, auth, spec)
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    response = diagnostics(client, other, job["id"])
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert diagnostics(client, auth, "f" * 32).status_code == 404


# --- the bounded read ------------------------------------------------------------------


def long_curve(n: int, shape: str) -> list[dict]:
    """Hand-built points of an n-epoch run: a loss that overshoots after its minimum
    ("too_high"), or one that keeps falling steadily ("too_low"), with dead relu units."""
    points = []
    for epoch in range(1, n + 1):
        t = epoch / n
        if shape == "too_high":
            loss = 2.0 - 1.8 * math.sin(math.pi * min(t, 0.5)) + (1.2 * (t - 0.5) if t > 0.5 else 0)
        else:
            loss = 2.0 - 1.5 * t
        points.append(
            {
                "epoch": epoch,
                "train_loss": loss,
                "val_loss": None,
                "train_accuracy": 0.9,
                "val_accuracy": None,
                "learning_rate": 0.1,
                "grad_norms": {"D": [1.0, 2.0], "update_ratio": [1e-3, 1e-3]},
                "activation_stats": [
                    {
                        "layer": 1,
                        "dead_fraction": 0.6,
                        "saturated_fraction": None,
                        "mean": 0.1,
                        "std": 0.2,
                    },
                    {
                        "layer": 2,
                        "dead_fraction": None,
                        "saturated_fraction": None,
                        "mean": 0.5,
                        "std": 0.1,
                    },
                ],  # fmt: skip
                "seconds": 0.01,
            }
        )
    return points


@pytest.mark.parametrize("shape", ["too_high", "too_low"])
def test_a_long_curve_is_read_within_the_limit_with_the_same_findings(backend_app, shape):
    app, auth = backend_app
    client = app.test_client()
    spec = {
        "network": {
            "layers": [{"units": 8, "activation": "relu"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"generator": "moons", "n_samples": 40},
        "training": {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 3000},
    }
    job = submit(client, auth, spec)
    points = long_curve(3000, shape)
    context = app.extensions["deltaflow"]
    with transaction(context.sessions) as session:
        curve_store.insert_points(session, job["id"], points)
    cap = 200
    with context.sessions() as session:
        read, stored = read_points(session, job["id"], cap)
    assert stored == 3000
    assert len(read) <= cap
    epochs = [p["epoch"] for p in read]
    assert epochs == sorted(set(epochs))
    assert epochs[:EDGE_POINTS] == list(range(1, EDGE_POINTS + 1))  # the start, exactly
    assert epochs[-EDGE_POINTS:] == list(range(3000 - EDGE_POINTS + 1, 3001))  # the end
    best = min(points, key=lambda p: p["train_loss"])["epoch"]
    assert best in epochs  # the minimum the "gave back" rule compares with
    assert all(p["activation_stats"] for p in read)  # stored fields come back whole

    run = RunContext.from_spec(spec, n_classes=2)
    whole = {(f["code"], f["severity"], f["layer"]) for f in diagnose(points, run)}
    sampled = {(f["code"], f["severity"], f["layer"]) for f in diagnose(read, run)}
    assert sampled == whole
    expected = "learning_rate_too_high" if shape == "too_high" else "learning_rate_too_low"
    assert (expected, "warning", None) in whole
    assert ("dead_relu", "warning", 1) in whole


def test_the_limit_is_configurable_and_a_short_curve_is_read_whole(
    settings, spec, add_points, make_key
):
    limited = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, diagnostics_points=60)
    )
    app = create_app({"settings": limited})
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key('acme')}"}
    job = submit(client, auth, spec)
    add_points(job["id"], range(1, 61))
    assert diagnostics(client, auth, job["id"]).get_json()["epochs_read"] == 60
    add_points(job["id"], range(61, 500))
    body = diagnostics(client, auth, job["id"]).get_json()
    assert body["epochs"] == 499
    assert body["epochs_read"] <= 60
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        assert read_points(session, job["id"], 10_000)[1] == 499
    engine.dispose()
    app.extensions["deltaflow"].engine.dispose()
