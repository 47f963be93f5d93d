"""The datasets API: JSON, CSV and NPZ uploads, validation, content addressing, deletion."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from service import dataset_arrays, dataset_files, datasets
from service.app import create_app
from service.config import Limits
from tests.support.datasets import stored_arrays

DATASETS = "/api/v1/datasets"


def assert_problem(response, status: int, loc: list | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    if loc is not None:
        assert body["errors"][0]["loc"] == loc, body
    return body


def npz(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def upload(client, auth, data: bytes, filename: str, **form):
    # Encoded in memory: the test client would spool a large body to an unclosed temp file.
    part = FileStorage(io.BytesIO(data), filename=filename)
    boundary, body = encode_multipart({"file": part, **form})
    return client.post(
        DATASETS,
        data=body,
        headers=auth,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


@pytest.fixture
def unchanged(row_counts, queued_messages):
    before = row_counts(), queued_messages()
    yield
    assert (row_counts(), queued_messages()) == before


# --- uploads -------------------------------------------------------------------------


def test_json_upload_stores_shape_and_classes(client, auth):
    body = {"name": "tiny", "task": "classification", "X": [[0, 1], [1, 0], [2, 2]], "y": [5, 3, 5]}
    response = client.post(DATASETS, json=body, headers=auth)
    assert response.status_code == 201
    dataset = response.get_json()
    assert response.headers["Location"] == f"{DATASETS}/{dataset['id']}"
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_outputs"]) == (3, 2, 2)
    assert dataset["classes"] == [3, 5]
    assert len(dataset["sha256"]) == 64


def test_csv_upload_uses_the_target_column(client, auth, sessions):
    text = "a,target,b\n1.0,yes,2\n3,no,4\n5,yes,6\n"
    response = upload(client, auth, text.encode(), "pets.csv")
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert dataset["name"] == "pets.csv"
    assert dataset["classes"] == ["no", "yes"]
    with sessions() as session:
        row = datasets.get_dataset(session, dataset_tenant(sessions), dataset["id"])
        arrays = stored_arrays(session, row)
    assert arrays.X.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert arrays.y.tolist() == [1, 0, 1]


def dataset_tenant(sessions) -> str:
    from sqlalchemy import select

    from service.models import Tenant

    with sessions() as session:
        return session.scalar(select(Tenant.id).where(Tenant.name == "acme"))


def test_csv_regression_targets(client, auth):
    text = "x,target\n0,0.5\n1,1.5\n2,2.5\n"
    response = upload(client, auth, text.encode(), "line.csv", task="regression", name="line")
    assert response.status_code == 201
    assert response.get_json()["task"] == "regression"
    assert response.get_json()["classes"] is None


def test_npz_upload(client, auth):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    response = upload(client, auth, npz(X=X, y=y), "blobs.npz", name="blobs")
    assert response.status_code == 201
    assert response.get_json()["n_outputs"] == 3


@pytest.mark.slow
def test_a_20000_by_784_float32_npz_fits_the_default_limits(client, auth, sessions):
    rng = np.random.default_rng(1)
    X = rng.random((20000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 20000)
    data = npz(X=X, y=y)
    assert len(data) > 60_000_000
    response = upload(client, auth, data, "mnist-sized.npz")
    assert response.status_code == 201, response.get_data(as_text=True)[:500]
    dataset = response.get_json()
    assert (dataset["n_samples"], dataset["n_features"], dataset["n_outputs"]) == (20000, 784, 10)
    with sessions() as session:
        row = datasets.get_dataset(session, dataset_tenant(sessions), dataset["id"])
        arrays = stored_arrays(session, row)
    assert np.array_equal(arrays.X, X.astype(np.float64))


# --- bad uploads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "r", "X": [[1, 2], [3]], "y": [0, 1]}, ["body", "X"]),
        ({"name": "m", "X": [[1], [2], [3]], "y": [0, 1]}, ["body", "y"]),
        ({"name": "n", "X": [[1], [2]], "y": [0]}, ["body", "y"]),
        ({"name": "s", "X": [[1]], "y": [0]}, ["body", "X"]),
        ({"name": "c", "X": [[1], [2]], "y": [4, 4]}, ["body", "y"]),
        ({"name": "t", "X": [["a"], ["b"]], "y": [0, 1]}, ["body", "X"]),
        ({"name": "f", "X": [[1.5], [2]], "y": [0.5, 1]}, ["body", "y"]),
        ({"name": "", "X": [[1], [2]], "y": [0, 1]}, ["body", "name"]),
        ({"name": "k", "task": "clustering", "X": [[1], [2]], "y": [0, 1]}, ["body", "task"]),
        ({"name": "x", "X": [[1], [2]]}, ["body", "y"]),
        ({"name": "e", "X": [[1], [2]], "y": [0, 1], "extra": 1}, ["body", "extra"]),
    ],
    ids=[
        "ragged", "length-mismatch", "short-y", "one-sample", "one-class", "text-features",
        "fractional-labels", "empty-name", "unknown-task", "missing-y", "unknown-field",
    ],
)  # fmt: skip
def test_bad_json_datasets_are_422(client, auth, body, loc, unchanged):
    assert_problem(client.post(DATASETS, json=body, headers=auth), 422, loc)


def test_malformed_json_is_400(client, auth, unchanged):
    response = client.post(
        DATASETS,
        data='{"name": "x", "X": [[1',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)


def test_non_finite_values_are_422(client, auth, unchanged):
    response = client.post(
        DATASETS,
        data='{"name": "nan", "X": [[1.0], [NaN]], "y": [0, 1]}',
        headers={**auth, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422, ["body", "X"])
    assert "non-finite" in body["detail"]


@pytest.mark.parametrize(
    ("data", "filename", "fragment"),
    [
        (b"a,b\n1,2\n3,4\n", "no-target.csv", "target"),
        (b"a,target\n1,0\n2\n", "short-row.csv", "fields"),
        (b"a,target\n1,0\nx,1\n", "text.csv", "not a number"),
        (b"a,target\n1,0\n", "one-row.csv", "at least 2"),
        (b"\xff\xfe\x00", "binary.csv", "UTF-8"),
        (b"PK\x03\x04 not really a zip", "broken.npz", "npz"),
    ],
    ids=["no-target", "ragged-row", "text", "one-sample", "not-utf8", "broken-npz"],
)
def test_bad_files_are_422(client, auth, data, filename, fragment, unchanged):
    body = assert_problem(upload(client, auth, data, filename), 422)
    assert fragment in body["detail"]


def test_npz_needs_X_and_y(client, auth, unchanged):
    body = assert_problem(upload(client, auth, npz(X=np.zeros((3, 2))), "x-only.npz"), 422)
    assert "'X' and 'y'" in body["detail"]


def test_npz_object_arrays_are_refused(client, auth, unchanged):
    data = io.BytesIO()
    np.savez(data, X=np.array([[1, None], [2, 3]], dtype=object), y=np.array([0, 1]))
    body = assert_problem(upload(client, auth, data.getvalue(), "objects.npz"), 422)
    assert "objects" in body["detail"]


def upload_with_limits(settings, key, content, **limits):
    """Upload ``content`` as big.npz to an app whose limits are lowered to ``limits``."""
    small = dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, **limits))
    app = create_app({"settings": small})
    try:
        return upload(app.test_client(), {"Authorization": f"Bearer {key}"}, content, "big.npz")
    finally:
        app.extensions["deltaflow"].engine.dispose()


def test_npz_sizes_are_checked_before_loading(settings, make_key, row_counts):
    key = make_key()
    before = row_counts()
    response = upload_with_limits(
        settings, key, npz(X=np.zeros((50, 3)), y=np.arange(50) % 2), dataset_values=100
    )
    body = assert_problem(response, 422, ["body", "file", "X"])
    assert "at most 100 values" in body["detail"]
    assert row_counts() == before


def test_a_body_over_the_limit_is_413(settings, make_key, row_counts):
    key = make_key()
    before = row_counts()
    response = upload_with_limits(
        settings, key, npz(X=np.zeros((100, 3)), y=np.arange(100) % 2), body_bytes=1000
    )
    assert_problem(response, 413)
    assert row_counts() == before


def test_missing_key_is_401(client, unchanged):
    assert_problem(client.post(DATASETS, json={"name": "a", "X": [[1], [2]], "y": [0, 1]}), 401)


# --- content addressing, list, delete ------------------------------------------------


def test_identical_data_shares_one_blob(client, auth, row_counts):
    body = {"name": "a", "X": [[0.0], [1.0]], "y": [0, 1]}
    first = client.post(DATASETS, json=body, headers=auth).get_json()
    second = client.post(DATASETS, json={**body, "name": "b"}, headers=auth).get_json()
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"]
    assert row_counts()["dataset_blobs"] == 1

    assert client.delete(f"{DATASETS}/{first['id']}", headers=auth).status_code == 204
    assert row_counts()["dataset_blobs"] == 1  # still used by the second dataset
    assert client.delete(f"{DATASETS}/{second['id']}", headers=auth).status_code == 204
    assert row_counts()["dataset_blobs"] == 0


def test_concurrent_identical_uploads_all_succeed_and_share_one_blob(app, auth, row_counts):
    import threading

    body = {"name": "same", "X": [[0.5], [1.5], [2.5]], "y": [0, 1, 0]}
    statuses: list[int] = []
    barrier = threading.Barrier(5)

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(DATASETS, json=body, headers=auth).status_code)

    threads = [threading.Thread(target=post) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 5
    counts = row_counts()
    assert (counts["datasets"], counts["dataset_blobs"]) == (5, 1)


def test_list_get_and_pagination(client, auth):
    bodies = [{"name": f"d{i}", "X": [[i], [i + 1]], "y": [0, 1]} for i in range(3)]
    ids = [client.post(DATASETS, json=b, headers=auth).get_json()["id"] for b in bodies]
    page = client.get(f"{DATASETS}?limit=2", headers=auth).get_json()
    assert [d["id"] for d in page["items"]] == ids[::-1][:2]
    rest = client.get(f"{DATASETS}?limit=2&cursor={page['next_cursor']}", headers=auth).get_json()
    assert [d["id"] for d in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    assert client.get(f"{DATASETS}/{ids[1]}", headers=auth).get_json()["name"] == "d1"


def test_a_dataset_used_by_a_job_cannot_be_deleted(client, auth, row_counts):
    dataset = client.post(
        DATASETS, json={"name": "d", "X": [[0], [1], [2], [3]], "y": [0, 1, 0, 1]}, headers=auth
    ).get_json()
    job = client.post(
        "/api/v1/jobs",
        json={
            "network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},
            "dataset": {"id": dataset["id"]},
        },
        headers=auth,
    )
    assert job.status_code == 202
    assert job.get_json()["dataset_id"] == dataset["id"]
    before = row_counts()
    assert_problem(client.delete(f"{DATASETS}/{dataset['id']}", headers=auth), 409)
    assert row_counts() == before


@pytest.mark.parametrize("status", ["running", "cancelling"])
def test_a_dataset_is_deleted_once_its_jobs_have_finished(client, auth, set_job, status):
    dataset = client.post(
        DATASETS, json={"name": "d", "X": [[0], [1], [2], [3]], "y": [0, 1, 0, 1]}, headers=auth
    ).get_json()
    spec = {
        "network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},
        "dataset": {"id": dataset["id"]},
    }
    done, busy = (client.post("/api/v1/jobs", json=spec, headers=auth).get_json() for _ in "ab")
    set_job(done["id"], status="succeeded")
    set_job(busy["id"], status=status)
    conflict = assert_problem(client.delete(f"{DATASETS}/{dataset['id']}", headers=auth), 409)
    assert "1 unfinished job" in conflict["detail"]

    set_job(busy["id"], status="cancelled")
    assert client.delete(f"{DATASETS}/{dataset['id']}", headers=auth).status_code == 204
    assert client.get(f"{DATASETS}/{dataset['id']}", headers=auth).status_code == 404
    for job in (done, busy):
        kept = client.get(f"/api/v1/jobs/{job['id']}", headers=auth)
        assert kept.status_code == 200
        assert kept.get_json()["dataset_id"] is None
        assert kept.get_json()["spec"]["dataset"]["id"] == dataset["id"]


def test_a_job_checks_weights_against_a_stored_datasets_sizes(client, auth):
    dataset = client.post(
        DATASETS, json={"name": "d", "X": [[0, 0, 0]] * 4, "y": [0, 1, 2, 0]}, headers=auth
    ).get_json()
    theta = np.zeros((3, 3)).tolist()  # needs (3, 4): 3 inputs + bias
    response = client.post(
        "/api/v1/jobs",
        json={
            "network": {
                "output": {"activation": "softmax"},
                "loss": "cross_entropy",
                "init": {"weights": {"format": "theta", "layers": [theta]}},
            },
            "dataset": {"id": dataset["id"]},
        },
        headers=auth,
    )
    assert_problem(response, 422, ["body", "network", "init", "weights", "layers", 0])


def test_another_tenant_sees_none_of_the_datasets(client, auth, make_key):
    dataset = client.post(
        DATASETS, json={"name": "d", "X": [[0], [1]], "y": [0, 1]}, headers=auth
    ).get_json()
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    assert_problem(client.get(f"{DATASETS}/{dataset['id']}", headers=other), 404)
    assert_problem(client.delete(f"{DATASETS}/{dataset['id']}", headers=other), 404)
    assert client.get(DATASETS, headers=other).get_json()["items"] == []
    job = client.post(
        "/api/v1/jobs",
        json={
            "network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},
            "dataset": {"id": dataset["id"]},
        },
        headers=other,
    )
    assert_problem(job, 422, ["body", "dataset", "id"])
    assert client.get(f"{DATASETS}/{dataset['id']}", headers=auth).status_code == 200


# --- the domain functions ------------------------------------------------------------


def test_pack_is_deterministic_and_round_trips():
    arrays = dataset_arrays.build_arrays([[1, 2], [3, 4]], ["b", "a"], "classification", Limits())
    assert dataset_files.pack(arrays) == dataset_files.pack(arrays)
    back = dataset_files.unpack(dataset_files.pack(arrays), arrays.task, arrays.classes)
    assert back.X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert back.y.tolist() == [1, 0]
    assert back.classes == ["a", "b"]


def test_infer_task():
    assert dataset_arrays.infer_task([0, 1, 1]) == "classification"
    assert dataset_arrays.infer_task(["a", "b"]) == "classification"
    assert dataset_arrays.infer_task([0.5, 1.0]) == "regression"
    assert dataset_arrays.infer_task([[0.0, 1.0], [1.0, 2.0]]) == "regression"


# --- a validation set of one's own ---------------------------------------------------


def stored(client, auth, X, y, name="d", task="classification"):
    body = {"name": name, "X": X, "y": y, "task": task}
    response = client.post(DATASETS, json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def on_validation_set(train_id, validation_id, **options):
    return {
        "network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},
        "dataset": {"id": train_id, "validation": {"id": validation_id}, **options},
    }


def test_a_job_names_its_validation_set_and_it_cannot_be_deleted_meanwhile(client, auth):
    train = stored(client, auth, [[0, 0], [1, 1], [2, 2], [3, 3]], ["a", "b", "c", "b"])
    only_b = stored(client, auth, [[5, 5], [6, 6]], ["c", "b"], name="v")  # classes b, c
    response = client.post("/api/v1/jobs", json=on_validation_set(train, only_b), headers=auth)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["spec"]["dataset"]["validation"] == {"id": only_b}
    conflict = assert_problem(client.delete(f"{DATASETS}/{only_b}", headers=auth), 409)
    assert "1 unfinished job" in conflict["detail"]


@pytest.mark.parametrize(
    ("validation", "options", "loc", "message"),
    [
        ("missing", {}, ["validation", "id"], "no dataset"),
        ("three_features", {}, ["validation", "id"], "3 features"),
        ("class_c", {}, ["validation", "id"], "['c']"),
        ("regression", {}, ["validation", "id"], "regression"),
        ("good", {"validation_split": 0.25}, ["validation_split"], "not both"),
    ],
)
def test_a_validation_set_must_fit_the_training_set(
    client, auth, row_counts, validation, options, loc, message
):
    train = stored(client, auth, [[0, 0], [1, 1], [2, 2], [3, 3]], ["a", "b", "a", "b"])
    sets = {
        "missing": "0" * 32,
        "three_features": stored(client, auth, [[0, 0, 0], [1, 1, 1]], ["a", "b"]),
        "class_c": stored(client, auth, [[0, 0], [1, 1]], ["a", "c"]),
        "regression": stored(client, auth, [[0, 0], [1, 1]], [0.5, 1.5], task="regression"),
        "good": stored(client, auth, [[0, 0], [1, 1]], ["a", "b"]),
    }
    before = row_counts()
    spec = on_validation_set(train, sets[validation], **options)
    body = assert_problem(
        client.post("/api/v1/jobs", json=spec, headers=auth), 422, ["body", "dataset", *loc]
    )
    assert message in body["detail"]
    assert row_counts() == before
