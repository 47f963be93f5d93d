"""``GET /datasets/{id}/points``: a bounded, deterministic sample of a stored dataset's points
(the job page's boundary chart draws them), on SQLite and PostgreSQL, hostile asks included.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from service.app import create_app
from service.config import Limits
from service.dataset_arrays import DatasetArrays
from service.dataset_points import sample_rows
from service.db import transaction
from service.tenants import create_tenant_key

API = "/api/v1"
DATASETS = f"{API}/datasets"
JOBS = f"{API}/jobs"


def upload(client, auth, X, y, task="classification", name="d") -> str:
    response = client.post(
        DATASETS, json={"name": name, "task": task, "X": X, "y": y}, headers=auth
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def problem(response, status: int, loc: list | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    if loc is not None:
        assert body["errors"][0]["loc"] == loc, body
    return body


def unbalanced(n: int = 300) -> tuple[list, list]:
    """Three string classes, one of them rare (3 rows of n), in blocks."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3)).round(5).tolist()
    y = ["<b>rare</b>"] * 3 + ["cat"] * (n // 2) + ["dog"] * (n - 3 - n // 2)
    return X, y


def test_a_small_dataset_comes_whole_with_its_labels(backend_app):
    app, auth = backend_app
    client = app.test_client()
    X, y = [[0.0, 0.5], [1.0, -1.0], [2.0, 3.25], [3.0, 0.0]], ["b", "a", "b", "a"]
    dataset_id = upload(client, auth, X, y)
    response = client.get(f"{DATASETS}/{dataset_id}/points", headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "dataset_id": dataset_id,
        "task": "classification",
        "classes": ["a", "b"],
        "columns": [0, 1],
        "X": X,
        "y": y,
        "total": 4,
        "sampled": False,
    }
    assert response.headers["Cache-Control"] == "no-store"
    etag = response.headers["ETag"]
    again = client.get(f"{DATASETS}/{dataset_id}/points", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["ETag"] == etag
    other = client.get(f"{DATASETS}/{dataset_id}/points?max_points=2", headers=auth)
    assert other.headers["ETag"] != etag


def test_a_sample_is_deterministic_bounded_and_keeps_every_class(backend_app):
    app, auth = backend_app
    client = app.test_client()
    X, y = unbalanced()
    dataset_id = upload(client, auth, X, y)
    url = f"{DATASETS}/{dataset_id}/points?max_points=20"
    first, second = client.get(url, headers=auth), client.get(url, headers=auth)
    body = first.get_json()
    assert body == second.get_json()
    assert first.headers["ETag"] == second.headers["ETag"]
    assert body["total"] == 300
    assert body["sampled"] is True
    assert len(body["X"]) == len(body["y"]) == 20
    assert set(body["y"]) == {"<b>rare</b>", "cat", "dog"}
    # Each returned point is a row of the dataset, with its own label, in dataset order.
    rows = [X.index(row) for row in body["X"]]
    assert rows == sorted(rows)
    assert [y[i] for i in rows] == body["y"]


def test_regression_targets_and_columns(backend_app):
    app, auth = backend_app
    client = app.test_client()
    X = [[float(i), float(-i), i / 2] for i in range(50)]
    targets = [[i * 0.1, 1.0] for i in range(50)]
    dataset_id = upload(client, auth, X, targets, task="regression")
    body = client.get(
        f"{DATASETS}/{dataset_id}/points?max_points=5&columns=2,0", headers=auth
    ).get_json()
    assert body["task"] == "regression"
    assert body["classes"] is None
    assert body["columns"] == [2, 0]
    assert body["X"] == [[X[i][2], X[i][0]] for i in (0, 10, 20, 30, 40)]
    assert body["y"] == [targets[i] for i in (0, 10, 20, 30, 40)]


def test_the_points_of_an_inline_job_are_its_data(backend_app):
    app, auth = backend_app
    client = app.test_client()
    X, y = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 3, [0, 1, 1, 0] * 3
    spec = {
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"X": X, "y": y},
        "training": {"epochs": 1},
    }
    submitted = client.post(JOBS, json=spec, headers=auth)
    assert submitted.status_code == 202, submitted.get_json()
    job = submitted.get_json()
    body = client.get(f"{DATASETS}/{job['spec']['dataset']['id']}/points", headers=auth).get_json()
    assert (body["X"], body["y"], body["sampled"]) == (X, y, False)


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("max_points=0", ["query", "max_points"]),
        ("max_points=-1", ["query", "max_points"]),
        ("max_points=5001", ["query", "max_points"]),
        (f"max_points={10**30}", ["query", "max_points"]),
        ("max_points=abc", ["query", "max_points"]),
        ("columns=3", ["query", "columns"]),
        ("columns=0,0", ["query", "columns"]),
        ("columns=-1", ["query", "columns"]),
        ("columns=", ["query", "columns"]),
        ("columns=%EF%BC%91", ["query", "columns"]),  # a fullwidth digit one
        ("columns=" + "9" * 5000, ["query", "columns"]),
        ("max_points=" + "9" * 5000, ["query", "max_points"]),
        ("columns=" + "0," * 20_000, ["query", "columns"]),
        ("colour=red", ["query", "colour"]),
        ("columns=0%00", ["query", "columns"]),
    ],
)
def test_a_bad_ask_is_a_422_naming_the_field(backend_app, query, loc):
    app, auth = backend_app
    client = app.test_client()
    dataset_id = upload(client, auth, *unbalanced(20))
    problem(client.get(f"{DATASETS}/{dataset_id}/points?{query}", headers=auth), 422, loc)


def test_another_tenants_or_a_missing_dataset_is_404(backend_app):
    app, auth = backend_app
    client = app.test_client()
    dataset_id = upload(client, auth, *unbalanced(20))
    with transaction(app.extensions["deltaflow"].sessions) as session:
        other = {"Authorization": f"Bearer {create_tenant_key(session, 'mallory')}"}
    theirs = client.get(f"{DATASETS}/{dataset_id}/points", headers=other)
    missing = client.get(f"{DATASETS}/{'0' * 32}/points", headers=auth)
    assert problem(theirs, 404)["detail"] == f"no dataset {dataset_id}"
    assert problem(missing, 404)["detail"] == f"no dataset {'0' * 32}"
    # An ETag learnt by the owner tells the other tenant nothing either.
    etag = client.get(f"{DATASETS}/{dataset_id}/points", headers=auth).headers["ETag"]
    problem(
        client.get(f"{DATASETS}/{dataset_id}/points", headers={**other, "If-None-Match": etag}), 404
    )
    problem(client.get(f"{DATASETS}/a%00b/points", headers=auth), 422, ["path"])
    problem(client.get(f"{DATASETS}/{'a' * 65}/points", headers=auth), 422, ["path", "dataset_id"])


def test_the_caps_are_settings_and_bound_a_wide_answer(settings, make_key):
    limits = dataclasses.replace(Limits(), dataset_points=50, dataset_point_values=120)
    app = create_app({"settings": dataclasses.replace(settings, limits=limits)})
    client, auth = app.test_client(), {"Authorization": f"Bearer {make_key()}"}
    rng = np.random.default_rng(1)
    dataset_id = upload(client, auth, rng.normal(size=(200, 6)).tolist(), [0, 1] * 100)
    body = client.get(f"{DATASETS}/{dataset_id}/points", headers=auth).get_json()
    assert len(body["X"]) == 120 // 6
    assert len(body["X"][0]) == 6
    assert body["sampled"]
    two = client.get(f"{DATASETS}/{dataset_id}/points?columns=0,1", headers=auth).get_json()
    assert len(two["X"]) == 50  # max_points' default is its cap
    refused = client.get(f"{DATASETS}/{dataset_id}/points?max_points=51", headers=auth)
    assert (
        "DELTAFLOW_MAX_DATASET_POINTS" in problem(refused, 422, ["query", "max_points"])["detail"]
    )
    app.extensions["deltaflow"].engine.dispose()


def arrays(y: list[int], k: int) -> DatasetArrays:
    labels = np.asarray(y, dtype=np.int64)
    return DatasetArrays(
        X=np.zeros((len(y), 2)), y=labels, task="classification", classes=list(range(k))
    )


@pytest.mark.parametrize("m", range(1, 100))
def test_sample_rows_keeps_classes_and_size(m):
    y = [0] * 90 + [1] * 8 + [2] * 1 + [3] * 1  # sizes 90, 8, 1, 1; and a class with no rows
    rows = sample_rows(arrays(y, 5), m)
    assert len(rows) == m
    assert len(set(rows.tolist())) == m
    assert np.all(np.diff(rows) > 0)
    kept = {y[i] for i in rows}
    assert len(kept) == min(m, 4)
    if m < 4:  # the largest classes first
        assert kept == {0, 1, 2, 3} - ({2, 3} if m == 2 else {3} if m == 3 else {1, 2, 3})
    np.testing.assert_array_equal(rows, sample_rows(arrays(y, 5), m))


def test_sample_rows_regression_is_strided():
    data = DatasetArrays(X=np.zeros((10, 1)), y=np.arange(10.0), task="regression", classes=None)
    assert sample_rows(data, 4).tolist() == [0, 2, 5, 7]
    assert sample_rows(data, 10).tolist() == list(range(10))
