"""Per-tenant quotas (service.quotas) through the API on SQLite and PostgreSQL: GET /quota,
admission (429 quota-exceeded, nothing stored, a batch whole or not at all), overrides,
and the ``deltaflow set-quota`` command."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from sqlalchemy import func, select

from service.cli import main
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Batch, Dataset, DatasetBlob, Job, TenantQuota
from service.quotas import set_quota

JOBS = "/api/v1/jobs"
SPEC = {
    "network": {"layers": [{"units": 4, "activation": "tanh"}], "output": {"activation": "softmax"},
                "loss": "cross_entropy"},
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 5},
}  # fmt: skip


@pytest.fixture
def settings(settings):
    """Defaults from the environment's settings: at most 3 queued jobs per tenant."""
    return dataclasses.replace(settings, quota_max_queued_jobs=3, quota_max_running_jobs=2)


@pytest.fixture
def env(backend_app):
    app, auth = backend_app
    factory = make_sessionmaker(app.extensions["deltaflow"].engine)
    return app.test_client(), auth, factory


def count(factory, model) -> int:
    with transaction(factory) as session:
        return int(session.scalar(select(func.count()).select_from(model)))


def quota(client, auth):
    response = client.get("/api/v1/quota", headers=auth)
    assert response.status_code == 200
    return response.get_json()


def assert_quota_exceeded(response, name):
    assert response.status_code == 429, response.get_json()
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == "/problems/quota-exceeded"
    assert body["quota"] == name
    assert "Nothing was stored" in body["detail"]


def test_the_quota_shows_limits_and_usage(env):
    client, auth, _ = env
    assert quota(client, auth) == {
        "limits": {"max_queued_jobs": 3, "max_running_jobs": 2, "max_storage_bytes": None},
        "usage": {"queued_jobs": 0, "running_jobs": 0, "storage_bytes": 0},
    }
    client.post(JOBS, json=SPEC, headers=auth)
    client.post("/api/v1/datasets", json={"name": "d", "X": [[0.0], [1.0]], "y": [0, 1]},
                headers=auth)  # fmt: skip
    usage = quota(client, auth)["usage"]
    assert usage["queued_jobs"] == 1
    assert usage["storage_bytes"] > 0


def test_a_submit_over_the_queued_quota_is_refused_and_stores_nothing(env):
    client, auth, factory = env
    for _ in range(3):
        assert client.post(JOBS, json=SPEC, headers=auth).status_code == 202
    assert_quota_exceeded(client.post(JOBS, json=SPEC, headers=auth), "max_queued_jobs")
    assert count(factory, Job) == 3


def test_a_batch_is_admitted_whole_or_not_at_all(env):
    client, auth, factory = env
    assert client.post(JOBS, json=SPEC, headers=auth).status_code == 202
    body = {
        "name": "sweep",
        "base": SPEC,
        "grid": {"training.optimizer.learning_rate": [0.1, 0.2, 0.3]},
    }
    assert_quota_exceeded(
        client.post("/api/v1/batches", json=body, headers=auth), "max_queued_jobs"
    )
    assert (count(factory, Job), count(factory, Batch)) == (1, 0)
    body["grid"]["training.optimizer.learning_rate"] = [0.1, 0.2]  # exactly fills it
    assert client.post("/api/v1/batches", json=body, headers=auth).status_code == 202
    assert count(factory, Job) == 3


def test_an_upload_over_the_storage_quota_stores_nothing(env):
    client, auth, factory = env
    first = {"name": "a", "X": [[0.0, 1.0]] * 20, "y": [0, 1] * 10}
    response = client.post("/api/v1/datasets", json=first, headers=auth)
    assert response.status_code == 201
    used = quota(client, auth)["usage"]["storage_bytes"]
    with transaction(factory) as session:
        set_quota(session, "acme", {"max_storage_bytes": used + 10})
    second = {"name": "b", "X": [[2.0, 3.0]] * 20, "y": [1, 0] * 10}  # new bytes, a new blob
    assert_quota_exceeded(
        client.post("/api/v1/datasets", json=second, headers=auth), "max_storage_bytes"
    )
    assert (count(factory, Dataset), count(factory, DatasetBlob)) == (1, 1)
    assert quota(client, auth)["limits"]["max_storage_bytes"] == used + 10


def test_a_tenants_own_quota_overrides_the_default(env):
    client, auth, factory = env
    with transaction(factory) as session:
        set_quota(session, "acme", {"max_queued_jobs": -1, "max_running_jobs": 5})
    for _ in range(5):
        assert client.post(JOBS, json=SPEC, headers=auth).status_code == 202
    assert quota(client, auth)["limits"] == {
        "max_queued_jobs": None, "max_running_jobs": 5, "max_storage_bytes": None,
    }  # fmt: skip
    with transaction(factory) as session:
        set_quota(session, "acme", {"max_queued_jobs": None})  # back to the default (3)
    assert_quota_exceeded(client.post(JOBS, json=SPEC, headers=auth), "max_queued_jobs")


def test_concurrent_submits_cannot_slip_past_the_quota(env):
    client, auth, factory = env
    app = client.application
    codes: list[int] = []

    def submit() -> None:
        codes.append(app.test_client().post(JOBS, json=SPEC, headers=auth).status_code)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [202] * 3 + [429] * 5
    assert count(factory, Job) == 3


def test_set_quota_command(settings, make_key, monkeypatch, capsys):
    make_key("acme")
    monkeypatch.setenv("DELTAFLOW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DELTAFLOW_QUOTA_MAX_QUEUED_JOBS", "7")
    argv = ["set-quota", "--tenant", "acme", "--max-running-jobs", "2", "--max-storage-bytes",
            "unlimited"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "max_queued_jobs default (7)", "max_running_jobs 2", "max_storage_bytes unlimited",
    ]  # fmt: skip
    assert main(["set-quota", "--tenant", "acme", "--max-running-jobs", "default"]) == 0
    engine = make_engine(settings.database_url)
    with transaction(make_sessionmaker(engine)) as session:
        own = session.get(TenantQuota, session.scalar(select(TenantQuota.tenant_id)))
        assert (own.max_running_jobs, own.max_storage_bytes) == (None, -1)
    engine.dispose()
    assert main(["set-quota", "--tenant", "nobody", "--max-queued-jobs", "1"]) == 1
    assert "no tenant 'nobody'" in capsys.readouterr().err
