"""Inline data sent with a job is stored once as a content-addressed dataset (issue 11),
on SQLite and PostgreSQL.

A job or batch with ``dataset: {"X": ..., "y": ...}`` stores its arrays through the dataset
code (the same bytes, task and classes: the same dataset; a new one counted against the
tenant's storage quota like an upload) and its spec names it: ``{"id": ..., "inline":
true, ...}``. Lists and the job's answer carry no arrays; a refused submit stores nothing.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from service.db import make_sessionmaker, transaction
from service.models import Dataset, DatasetBlob, Job
from service.quotas import set_quota

JOBS = "/api/v1/jobs"
BATCHES = "/api/v1/batches"


def inline_spec(n: int = 40, d: int = 3, labels: list | None = None) -> dict:
    rng = np.random.default_rng(0)
    return {
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {
            "X": rng.normal(size=(n, d)).round(4).tolist(),
            "y": labels or [i % 2 for i in range(n)],
            "validation_split": 0.25,
        },
        "training": {"epochs": 1, "batch_size": 8},
    }


def counts(app) -> tuple[int, int, int]:
    factory = make_sessionmaker(app.extensions["deltaflow"].engine)
    with transaction(factory) as session:
        return tuple(  # type: ignore[return-value]
            int(session.scalar(select(func.count()).select_from(model)))
            for model in (Dataset, DatasetBlob, Job)
        )


def test_the_same_inline_data_twice_is_one_dataset(backend_app):
    app, auth = backend_app
    client = app.test_client()
    first = client.post(JOBS, json=inline_spec(), headers=auth)
    second = client.post(JOBS, json=inline_spec(), headers=auth)
    assert first.status_code == second.status_code == 202, second.get_json()
    a, b = first.get_json(), second.get_json()
    assert a["spec"]["dataset"]["id"] == b["spec"]["dataset"]["id"]
    assert a["spec"]["dataset"] == {
        "id": a["spec"]["dataset"]["id"],
        "inline": True,
        "validation": None,
        "validation_split": 0.25,
        "standardize": False,
    }
    assert a["name"].startswith("inline ")
    assert counts(app) == (1, 1, 2)

    dataset = client.get(f"/api/v1/datasets/{a['spec']['dataset']['id']}", headers=auth)
    assert dataset.status_code == 200
    assert dataset.get_json()["n_samples"] == 40
    assert dataset.get_json()["classes"] == [0, 1]
    assert dataset.get_json()["name"].startswith("inline ")

    # Same X, labels of another type: another dataset (0 is not "0") over the same blob
    # (y is stored as class indices; the classes are the dataset's).
    strings = client.post(
        JOBS, json=inline_spec(labels=[str(i % 2) for i in range(40)]), headers=auth
    )
    assert strings.status_code == 202, strings.get_json()
    assert strings.get_json()["spec"]["dataset"]["id"] != a["spec"]["dataset"]["id"]
    assert counts(app)[:2] == (2, 1)

    # A list's items and the job's own answer are small.
    listed = client.get(f"{JOBS}?limit=10", headers=auth)
    assert listed.status_code == 200
    assert all("X" not in item["spec"]["dataset"] for item in listed.get_json()["items"])
    one = client.get(f"{JOBS}/{a['id']}", headers=auth).get_json()
    assert one["spec"]["dataset"] == a["spec"]["dataset"]


def test_large_inline_jobs_leave_lists_small(backend_app):
    app, auth = backend_app
    client = app.test_client()
    heavy = inline_spec(2000, 20)
    for _ in range(5):
        assert client.post(JOBS, json=heavy, headers=auth).status_code == 202
    assert counts(app) == (1, 1, 5)
    response = client.get(f"{JOBS}?limit=10", headers=auth)
    assert len(response.get_data()) < 20_000, len(response.get_data())
    job = response.get_json()["items"][0]
    assert len(client.get(f"{JOBS}/{job['id']}", headers=auth).get_data()) < 5_000


def test_a_batch_over_inline_data_stores_it_once(backend_app):
    app, auth = backend_app
    client = app.test_client()
    grid = {"training.seed": list(range(200))}
    response = client.post(
        BATCHES, json={"name": "grid", "base": inline_spec(), "grid": grid}, headers=auth
    )
    assert response.status_code == 202, response.get_json()
    assert counts(app) == (1, 1, 200)
    listed = client.get(f"{JOBS}?batch_id={response.get_json()['id']}&limit=200", headers=auth)
    ids = {item["spec"]["dataset"]["id"] for item in listed.get_json()["items"]}
    assert len(ids) == 1


def test_a_refused_batch_stores_no_inline_dataset(backend_app):
    app, auth = backend_app
    client = app.test_client()
    base = inline_spec()
    grid = {"training.epochs": [1, 10**9]}  # the second job is over the epoch limit
    response = client.post(BATCHES, json={"name": "bad", "base": base, "grid": grid}, headers=auth)
    assert response.status_code == 422, response.get_json()
    assert counts(app) == (0, 0, 0)
    bad = inline_spec()
    bad["training"]["epochs"] = 10**9
    assert client.post(JOBS, json=bad, headers=auth).status_code == 422
    assert counts(app) == (0, 0, 0)


def test_inline_data_counts_against_the_storage_quota(backend_app):
    app, auth = backend_app
    client = app.test_client()
    assert client.post(JOBS, json=inline_spec(), headers=auth).status_code == 202
    used = client.get("/api/v1/quota", headers=auth).get_json()["usage"]["storage_bytes"]
    assert used > 0
    with transaction(make_sessionmaker(app.extensions["deltaflow"].engine)) as session:
        set_quota(session, "acme", {"max_storage_bytes": used + 10})
    # The same data again adds nothing; new data is refused whole.
    assert client.post(JOBS, json=inline_spec(), headers=auth).status_code == 202
    response = client.post(JOBS, json=inline_spec(n=60), headers=auth)
    assert response.status_code == 429, response.get_json()
    assert response.get_json()["quota"] == "max_storage_bytes"
    grid = {"training.seed": [0, 1]}
    batch = {"name": "over", "base": inline_spec(n=60), "grid": grid}
    assert client.post(BATCHES, json=batch, headers=auth).status_code == 429
    assert counts(app) == (1, 1, 2)
