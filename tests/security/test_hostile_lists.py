"""Lists never repeat inline data (issue 11), on SQLite and PostgreSQL.

The finding: with five inline-data jobs, ``GET /jobs`` was 147 MB and 11 s, and the
dashboard polls it. A list item's spec now has no ``dataset.X``/``dataset.y`` (the
database drops them, so they are not even read); ``dataset.inline`` says where they are:
the job's own ``GET /jobs/{id}``, which keeps the whole spec. Since inline data is stored
as a content-addressed dataset (test_inline_datasets.py), new jobs' specs name it by id;
the database still drops the arrays of specs stored before that.
"""

from __future__ import annotations

from tests.support.hostile import inline_spec

JOBS = "/api/v1/jobs"


def test_job_lists_carry_no_inline_arrays(backend_app, spec):
    app, auth = backend_app
    client = app.test_client()
    heavy = inline_spec(2000, 20)
    ids = [client.post(JOBS, json=heavy, headers=auth).get_json()["id"] for _ in range(5)]
    generated = client.post(JOBS, json=spec, headers=auth).get_json()["id"]

    response = client.get(f"{JOBS}?limit=10", headers=auth)
    assert response.status_code == 200
    items = {item["id"]: item for item in response.get_json()["items"]}
    assert set(items) == {*ids, generated}
    stored = {items[job_id]["spec"]["dataset"]["id"] for job_id in ids}
    assert len(stored) == 1  # the same data, one content-addressed dataset
    for job_id in ids:
        dataset = items[job_id]["spec"]["dataset"]
        assert "X" not in dataset
        assert "y" not in dataset
        assert dataset["inline"] is True
        assert items[job_id]["spec"]["network"]["layers"] == [{"units": 4, "activation": "tanh"}]
    assert items[generated]["spec"]["dataset"]["generator"] == "spirals"
    assert "inline" not in items[generated]["spec"]["dataset"]
    # Five jobs of 2000 x 20 inline values each: the list is a few KB, not megabytes.
    assert len(response.get_data()) < 20_000, len(response.get_data())

    # The job's own GET names the dataset that holds the arrays.
    one = client.get(f"{JOBS}/{ids[0]}", headers=auth).get_json()
    assert one["spec"]["dataset"]["id"] in stored
    ds = client.get(f"/api/v1/datasets/{one['spec']['dataset']['id']}", headers=auth).get_json()
    assert (ds["n_samples"], ds["n_features"], ds["task"]) == (2000, 20, "classification")


def test_a_batch_job_list_carries_no_inline_arrays(backend_app):
    app, auth = backend_app
    client = app.test_client()
    batch = {
        "name": "inline sweep",
        "base": inline_spec(500, 10),
        "grid": {"training.optimizer.learning_rate": [0.01, 0.1, 0.2]},
    }
    response = client.post("/api/v1/batches", json=batch, headers=auth)
    assert response.status_code == 202, response.get_json()
    batch_id = response.get_json()["id"]
    listed = client.get(f"{JOBS}?batch_id={batch_id}", headers=auth)
    items = listed.get_json()["items"]
    assert len(items) == 3
    assert all("X" not in item["spec"]["dataset"] for item in items)
    assert len(listed.get_data()) < 15_000


def test_a_batch_cannot_store_inline_data_a_thousand_times(client, auth, row_counts):
    before = row_counts()
    grid = {"training.seed": list(range(500))}
    batch = {"name": "copies", "base": inline_spec(2000, 4), "grid": grid}
    response = client.post("/api/v1/batches", json=batch, headers=auth)
    assert response.status_code == 422, response.get_json()
    assert "DELTAFLOW_MAX_BATCH_INLINE_VALUES" in response.get_json()["detail"]
    search = {"name": "tpe", "space": {"training.seed": {"randint": [0, 9]}}, "trials": 500}
    tpe = {"name": "tpe", "base": inline_spec(2000, 4), "search": search}
    response = client.post("/api/v1/batches", json=tpe, headers=auth)
    assert response.status_code == 422, response.get_json()
    assert row_counts() == before
