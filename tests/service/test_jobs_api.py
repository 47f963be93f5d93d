"""The jobs API over the Flask test client, on a temporary SQLite database and a real
filesystem broker folder (so "nothing enqueued" is a count of message files)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from service.schemas.names import JobStatus
from service.timeutil import utcnow

JOBS = "/api/v1/jobs"


def assert_problem(response, status: int, loc: list | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    if loc is not None:
        assert [e["loc"] for e in body["errors"]][0] == loc, body
    return body


def submit(client, auth, spec, **headers):
    return client.post(JOBS, json=spec, headers={**auth, **headers})


# --- submit --------------------------------------------------------------------------


def test_submit_answers_202_with_location_and_the_spec_with_defaults(
    client, auth, spec, queued_messages
):
    response = submit(client, auth, spec)

    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"{JOBS}/{job['id']}"
    assert job["status"] == "queued"
    assert job["spec"]["training"]["optimizer"]["beta2"] == 0.999
    assert job["spec"]["network"]["init"] == {"scheme": "glorot"}
    assert job["spec"]["dataset"]["n_classes"] == 3
    assert job["progress"] == {"epoch": 0, "epochs": 20, "fraction": 0.0, "eta_seconds": None}
    assert job["created_at"].endswith("Z")
    assert queued_messages() == 1


def test_submit_records_the_dispatch(client, auth, spec, sessions):
    from service.models import Job

    job_id = submit(client, auth, spec).get_json()["id"]
    with sessions() as session:
        assert session.get(Job, job_id).dispatched_at is not None


def test_an_unreachable_broker_leaves_the_job_queued_not_failed(settings, make_key, spec, sessions):
    import dataclasses

    from service.app import create_app
    from service.models import Job

    # Nothing listens on port 1: sending fails fast and the job waits for the reaper.
    down = dataclasses.replace(settings, broker_url="redis://127.0.0.1:1/0")
    app = create_app({"settings": down})
    try:
        response = app.test_client().post(
            JOBS, json=spec, headers={"Authorization": f"Bearer {make_key()}"}
        )
    finally:
        app.extensions["deltaflow"].engine.dispose()
    assert response.status_code == 202
    with sessions() as session:
        job = session.get(Job, response.get_json()["id"])
        assert job.status == JobStatus.queued
        assert job.dispatched_at is None


def test_inline_data_gets_its_task_inferred_and_stored(client, auth, spec):
    spec["dataset"] = {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": ["no", "yes", "yes", "no"]}
    job = submit(client, auth, spec).get_json()
    # Stored as a content-addressed dataset the spec names (issue 11).
    assert job["spec"]["dataset"]["inline"] is True
    assert "y" not in job["spec"]["dataset"]
    dataset_id = job["spec"]["dataset"]["id"]
    dataset = client.get(f"/api/v1/datasets/{dataset_id}", headers=auth).get_json()
    assert dataset["task"] == "classification"
    assert dataset["classes"] == ["no", "yes"]


# --- bad input: nothing persisted, nothing enqueued ----------------------------------


@pytest.fixture
def unchanged(row_counts, queued_messages):
    """Asserts after the test body that no row was written and no message sent."""
    before = row_counts(), queued_messages()
    yield
    assert (row_counts(), queued_messages()) == before


def test_malformed_json_is_400(client, auth, unchanged):
    response = client.post(
        JOBS, data='{"network": ', headers={**auth, "Content-Type": "application/json"}
    )
    assert_problem(response, 400)


def test_missing_key_is_401_with_a_challenge(client, spec, unchanged):
    response = client.post(JOBS, json=spec)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_key_is_401(client, spec, unchanged):
    response = client.post(JOBS, json=spec, headers={"Authorization": "Bearer dfk_not-a-key"})
    assert_problem(response, 401)
    assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_a_body_over_the_limit_is_413(settings, make_key, spec, row_counts, queued_messages):
    import dataclasses

    from service.app import create_app

    small = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, body_bytes=300)
    )
    app = create_app({"settings": small})
    key = make_key()
    before = row_counts(), queued_messages()
    spec["name"] = "x" * 200
    try:
        response = app.test_client().post(
            JOBS, json=spec, headers={"Authorization": f"Bearer {key}"}
        )
    finally:
        app.extensions["deltaflow"].engine.dispose()
    assert_problem(response, 413)
    assert (row_counts(), queued_messages()) == before


# (id, dotted path in the spec, new value, expected error location after "body")
BAD_SPECS = [
    ("negative-lr", "training.optimizer.learning_rate", -1, "training.optimizer.learning_rate"),
    ("hidden-softmax", "network.layers", [{"units": 4, "activation": "softmax"}],
     "network.layers.0.activation"),
    ("unknown-loss", "network.loss", "hinge", "network.loss"),
    ("ce-needs-softmax", "network.output.activation", "sigmoid", "network.loss"),
    ("too-many-samples", "dataset.n_samples", 10**9, "dataset.n_samples"),
    ("unknown-generator", "dataset.generator", "nope", "dataset.generator"),
    ("split-range", "dataset.validation_split", 1.5, "dataset.validation_split"),
    ("too-many-epochs", "training.epochs", 10**7, "training.epochs"),
    ("unknown-field", "training.epoch", 5, "training.epoch"),
    ("too-many-units", "network.layers", [{"units": 9000}], "network.layers.0.units"),
    ("too-many-layers", "network.layers", [{"units": 4}] * 40, "network.layers"),
    ("too-many-parameters", "network.layers", [{"units": 3000}] * 2, "network"),
    ("unknown-dataset", "dataset", {"id": "no-such-dataset"}, "dataset.id"),
    ("ragged-inline-X", "dataset", {"X": [[1, 2], [3]], "y": [0, 1]}, "dataset.X"),
    ("inline-length-mismatch", "dataset", {"X": [[1], [2], [3]], "y": [0, 1]}, "dataset.y"),
    ("one-class", "dataset", {"X": [[1], [2]], "y": [1, 1]}, "dataset.y"),
    ("not-an-object", "training", [1, 2], "training"),
]  # fmt: skip


def set_path(spec: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        spec = spec[key]
    spec[last] = value


def as_loc(dotted: str) -> list:
    return ["body", *(int(p) if p.isdigit() else p for p in dotted.split("."))]


@pytest.mark.parametrize(
    ("path", "value", "loc"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_specs_are_422_at_the_field(client, auth, spec, path, value, loc, unchanged):
    set_path(spec, path, value)
    assert_problem(submit(client, auth, spec), 422, as_loc(loc))


def test_a_missing_part_is_422(client, auth, spec, unchanged):
    del spec["network"]
    assert_problem(submit(client, auth, spec), 422, ["body", "network"])


def test_the_gradient_check_is_limited_to_small_networks(client, auth, spec, unchanged):
    spec["training"]["gradient_check"] = True
    spec["network"]["layers"] = [{"units": 1000}]  # 6003 parameters, the limit is 5000
    assert_problem(submit(client, auth, spec), 422, ["body", "training", "gradient_check"])


def test_regression_data_needs_mse(client, auth, spec, unchanged):
    spec["dataset"] = {"generator": "sine"}
    assert_problem(submit(client, auth, spec), 422, ["body", "network", "loss"])


def test_explicit_weights_must_fit_the_dataset(client, auth, spec, unchanged):
    # spirals: 2 inputs, 8 hidden, 3 classes -> Θ1 (8, 3) and Θ2 (3, 9); Θ2 is wrong here.
    theta1 = np.zeros((8, 3)).tolist()
    theta2 = np.zeros((3, 8)).tolist()
    spec["network"]["init"] = {"weights": {"format": "theta", "layers": [theta1, theta2]}}
    body = assert_problem(
        submit(client, auth, spec), 422, ["body", "network", "init", "weights", "layers", 1]
    )
    assert "(3, 9)" in body["detail"]


def test_explicit_weights_that_fit_are_accepted_as_given(client, auth, spec):
    W1, b1 = np.full((2, 8), 0.5).tolist(), [0.0] * 8
    W2, b2 = np.full((8, 3), -0.25).tolist(), [0.1, 0.2, 0.3]
    spec["network"]["init"] = {
        "weights": {"format": "wb", "layers": [{"W": W1, "b": b1}, {"W": W2, "b": b2}]}
    }
    response = submit(client, auth, spec)
    assert response.status_code == 202
    stored = response.get_json()["spec"]["network"]["init"]["weights"]
    assert stored["layers"][1]["b"] == [0.1, 0.2, 0.3]


def test_non_finite_numbers_are_422(client, auth, spec, unchanged):
    response = client.post(
        JOBS,
        data='{"network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},'
        ' "dataset": {"generator": "xor"}, "training": {"l2": NaN}}',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, ["body", "training", "l2"])


# --- idempotency ---------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_return_the_same_job(
    client, auth, spec, queued_messages, row_counts
):
    first = submit(client, auth, spec, **{"Idempotency-Key": "k-1"})
    counts = row_counts()
    again = submit(client, auth, spec, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert row_counts() == counts
    assert queued_messages() == 1


def test_the_same_key_with_another_body_is_422(client, auth, spec, row_counts):
    submit(client, auth, spec, **{"Idempotency-Key": "k-2"})
    counts = row_counts()
    spec["training"]["epochs"] = 21
    response = submit(client, auth, spec, **{"Idempotency-Key": "k-2"})
    assert_problem(response, 422, ["header", "Idempotency-Key"])
    assert row_counts() == counts


def test_idempotency_keys_are_per_tenant(client, auth, make_key, spec):
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    a = submit(client, auth, spec, **{"Idempotency-Key": "shared"}).get_json()["id"]
    b = submit(client, other, spec, **{"Idempotency-Key": "shared"}).get_json()["id"]
    assert a != b


def test_concurrent_repeats_create_one_job(backend_app, spec, queued_messages):
    app, auth = backend_app
    results: list = []
    barrier = threading.Barrier(6)

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        results.append(submit(client, auth, spec, **{"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [202] * 6
    assert len({r.get_json()["id"] for r in results}) == 1
    listed = app.test_client().get(JOBS, headers=auth).get_json()["items"]
    assert len(listed) == 1
    assert queued_messages() == 1


# --- read, ETag, list ----------------------------------------------------------------


def test_get_has_an_etag_and_answers_304_until_the_job_changes(client, auth, spec, set_job):
    submitted = submit(client, auth, spec)
    job_id = submitted.get_json()["id"]
    first = client.get(f"{JOBS}/{job_id}", headers=auth)
    etag = first.headers["ETag"]
    assert first.status_code == 200
    assert submitted.headers["ETag"] == etag  # the submit answer is already current

    cached = client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.get_data() == b""

    set_job(job_id, status="running", attempt=1, started_at=utcnow())
    changed = client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["status"] == "running"
    assert changed.get_json()["attempt"] == 1


def test_progress_reports_fraction_and_eta_from_epoch_times(
    client, auth, spec, set_job, add_points
):
    job_id = submit(client, auth, spec).get_json()["id"]
    set_job(job_id, status="running")
    add_points(job_id, range(1, 6), seconds=0.5)
    progress = client.get(f"{JOBS}/{job_id}", headers=auth).get_json()["progress"]
    # 5 of 20 epochs done at 0.5 s each: 15 remain.
    assert progress == {"epoch": 5, "epochs": 20, "fraction": 0.25, "eta_seconds": 7.5}


def test_the_eta_ignores_the_warm_up_epoch_and_single_spikes(
    client, auth, spec, set_job, add_points
):
    job_id = submit(client, auth, spec).get_json()["id"]
    set_job(job_id, status="running")

    def eta() -> float:
        return client.get(f"{JOBS}/{job_id}", headers=auth).get_json()["progress"]["eta_seconds"]

    add_points(job_id, range(1, 2), seconds=3.0)  # the first epoch: loading, allocating
    assert eta() == 3.0 * 19  # nothing better known yet
    add_points(job_id, range(2, 4), seconds=0.5)
    assert eta() == 0.5 * 17  # a mean would say 1.33 s per epoch: 22.7 s
    add_points(job_id, range(4, 5), seconds=4.0)  # a checkpoint, a busy core
    add_points(job_id, range(5, 6), seconds=0.5)
    assert eta() == 0.5 * 15


def test_unknown_jobs_are_404_for_every_operation(client, auth, unchanged):
    for method, path, body in [
        ("get", f"{JOBS}/does-not-exist", None),
        ("get", f"{JOBS}/does-not-exist/curve", None),
        ("get", f"{JOBS}/does-not-exist/model", None),
        ("post", f"{JOBS}/does-not-exist/predict", {"X": [[0.0]]}),
        ("post", f"{JOBS}/does-not-exist/cancel", None),
        ("delete", f"{JOBS}/does-not-exist", None),
    ]:
        assert_problem(getattr(client, method)(path, json=body, headers=auth), 404)


def test_list_is_newest_first_with_a_cursor(client, auth, spec):
    ids = [submit(client, auth, spec).get_json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        page = client.get(JOBS + query, headers=auth).get_json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_the_cursor_breaks_ties_between_equal_timestamps_by_id(client, auth, spec, set_job):
    ids = [submit(client, auth, spec).get_json()["id"] for _ in range(4)]
    same = utcnow()
    for job_id in ids:
        set_job(job_id, created_at=same)
    seen, cursor = [], None
    for _ in range(5):
        query = f"?limit=1&cursor={cursor}" if cursor else "?limit=1"
        page = client.get(JOBS + query, headers=auth).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_list_filters_by_status(client, auth, spec, set_job):
    a = submit(client, auth, spec).get_json()["id"]
    submit(client, auth, spec)
    set_job(a, status="failed")
    page = client.get(f"{JOBS}?status=failed", headers=auth).get_json()
    assert [item["id"] for item in page["items"]] == [a]


def test_a_light_list_polls_with_an_etag_and_without_specs(client, auth, spec, set_job):
    a = submit(client, auth, spec).get_json()["id"]
    b = submit(client, auth, spec).get_json()["id"]
    full = client.get(f"{JOBS}?limit=10", headers=auth)
    assert all(item["spec"]["training"] for item in full.get_json()["items"])
    light = client.get(f"{JOBS}?limit=10&spec=false", headers=auth)
    assert [item["id"] for item in light.get_json()["items"]] == [b, a]
    assert [item["spec"] for item in light.get_json()["items"]] == [None, None]
    assert len(light.data) < len(full.data)
    etag = light.headers["ETag"]
    assert etag != full.headers["ETag"]  # the query is part of the tag
    again = client.get(f"{JOBS}?limit=10&spec=false", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    set_job(a, status="running", attempt=1, started_at=utcnow())
    moved = client.get(f"{JOBS}?limit=10&spec=false", headers={**auth, "If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.get_json()["items"][1]["status"] == "running"
    # A new job on the page changes it too.
    tag = moved.headers["ETag"]
    submit(client, auth, spec)
    grown = client.get(f"{JOBS}?limit=10&spec=false", headers={**auth, "If-None-Match": tag})
    assert grown.status_code == 200
    assert len(grown.get_json()["items"]) == 3


def test_a_forged_cursor_is_422(client, auth):
    assert_problem(client.get(f"{JOBS}?cursor=bm9wZQ", headers=auth), 422, ["query", "cursor"])


def test_the_page_size_is_capped_by_the_settings(settings, make_key, spec):
    import dataclasses

    from service.app import create_app

    capped = dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, page_size=2))
    app = create_app({"settings": capped})
    client, auth = app.test_client(), {"Authorization": f"Bearer {make_key()}"}
    try:
        for _ in range(3):
            submit(client, auth, spec)
        page = client.get(f"{JOBS}?limit=50", headers=auth).get_json()
    finally:
        app.extensions["deltaflow"].engine.dispose()
    assert len(page["items"]) == 2
    assert page["next_cursor"] is not None


# --- curve ---------------------------------------------------------------------------


def test_curve_since_returns_only_newer_points(client, auth, spec, set_job, add_points):
    job_id = submit(client, auth, spec).get_json()["id"]
    set_job(job_id, status="running")
    add_points(job_id, range(1, 11))
    first = client.get(f"{JOBS}/{job_id}/curve", headers=auth).get_json()
    assert [p["epoch"] for p in first["points"]] == list(range(1, 11))
    assert first["next_since"] == 10
    assert first["complete"] is False

    add_points(job_id, range(11, 14))
    later = client.get(f"{JOBS}/{job_id}/curve?since=10", headers=auth).get_json()
    assert [p["epoch"] for p in later["points"]] == [11, 12, 13]
    assert set(later["points"][0]) == {
        "epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"
    }  # fmt: skip
    asked = client.get(f"{JOBS}/{job_id}/curve?since=10&fields=grad_norms,seconds", headers=auth)
    assert set(asked.get_json()["points"][0]) == {"epoch", "grad_norms", "seconds"}

    set_job(job_id, status="succeeded", finished_at=utcnow())
    done = client.get(f"{JOBS}/{job_id}/curve?since=13", headers=auth).get_json()
    assert done["points"] == []
    assert done["next_since"] == 13
    assert done["complete"] is True


def test_curve_downsampling_keeps_first_and_last(client, auth, spec, set_job, add_points):
    """(The M4 semantics on both databases: tests/service/test_curves.py.)"""
    job_id = submit(client, auth, spec).get_json()["id"]
    add_points(job_id, range(1, 1001))
    curve = client.get(f"{JOBS}/{job_id}/curve?max_points=11", headers=auth).get_json()
    epochs = [p["epoch"] for p in curve["points"]]
    assert 2 <= len(epochs) <= 11
    assert (epochs[0], epochs[-1]) == (1, 1000)
    assert epochs == sorted(set(epochs))
    assert curve["next_since"] == 1000
    assert curve["complete"] is False  # queued: more may come


def test_curve_etag_and_304(client, auth, spec, add_points):
    job_id = submit(client, auth, spec).get_json()["id"]
    first = client.get(f"{JOBS}/{job_id}/curve", headers=auth)
    etag = first.headers["ETag"]
    again = client.get(f"{JOBS}/{job_id}/curve", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304
    add_points(job_id, range(1, 3))
    changed = client.get(f"{JOBS}/{job_id}/curve", headers={**auth, "If-None-Match": etag})
    assert changed.status_code == 200
    assert len(changed.get_json()["points"]) == 2


# --- cancel and delete ---------------------------------------------------------------


def test_cancel_a_queued_job_cancels_it_at_once(client, auth, spec):
    job_id = submit(client, auth, spec).get_json()["id"]
    response = client.post(f"{JOBS}/{job_id}/cancel", headers=auth)
    assert response.status_code == 202
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["finished_at"] is not None


def test_cancel_a_running_job_asks_the_run_to_stop(client, auth, spec, set_job, sessions):
    from service.models import Job

    job_id = submit(client, auth, spec).get_json()["id"]
    set_job(job_id, status="running")
    response = client.post(f"{JOBS}/{job_id}/cancel", headers=auth)
    assert response.status_code == 202
    assert response.get_json()["status"] == "cancelling"
    with sessions() as session:
        assert session.get(Job, job_id).cancel_requested is True
    # Asking twice is harmless.
    assert client.post(f"{JOBS}/{job_id}/cancel", headers=auth).status_code == 202


def test_cancel_a_finished_job_is_409_and_changes_nothing(
    client, auth, spec, set_job, row_counts, queued_messages
):
    job_id = submit(client, auth, spec).get_json()["id"]
    set_job(job_id, status="succeeded")
    before = client.get(f"{JOBS}/{job_id}", headers=auth)
    counts = row_counts(), queued_messages()
    assert_problem(client.post(f"{JOBS}/{job_id}/cancel", headers=auth), 409)
    after = client.get(f"{JOBS}/{job_id}", headers=auth)
    assert after.headers["ETag"] == before.headers["ETag"]
    assert after.get_json()["status"] == "succeeded"
    assert (row_counts(), queued_messages()) == counts


def test_delete_is_409_while_running_and_204_when_finished(
    client, auth, spec, set_job, add_points, row_counts
):
    job_id = submit(client, auth, spec).get_json()["id"]
    set_job(job_id, status="running")
    add_points(job_id, range(1, 4))
    before = row_counts()
    assert_problem(client.delete(f"{JOBS}/{job_id}", headers=auth), 409)
    assert row_counts() == before

    set_job(job_id, status="failed")
    assert client.delete(f"{JOBS}/{job_id}", headers=auth).status_code == 204
    after = row_counts()
    assert after["jobs"] == before["jobs"] - 1
    assert after["curve_points"] == before["curve_points"] - 3
    assert_problem(client.get(f"{JOBS}/{job_id}", headers=auth), 404)


# --- model and predict ---------------------------------------------------------------


def regression_model(client, auth, set_job, store_model):
    """A succeeded 2-3-1 tanh/identity regression job with known weights."""
    spec = {
        "network": {
            "layers": [{"units": 3, "activation": "tanh"}],
            "output": {"activation": "identity"},
            "loss": "mse",
        },
        "dataset": {"generator": "plane", "n_samples": 50, "standardize": True},
    }
    job_id = submit(client, auth, spec).get_json()["id"]
    W1 = np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.6]])
    b1 = np.array([0.1, 0.0, -0.1])
    W2 = np.array([[1.0], [-1.0], [0.5]])
    b2 = np.array([0.25])
    mean, std = [1.0, -2.0], [2.0, 0.5]
    store_model(
        job_id, [W1, W2], [b1, b2],
        layer_sizes=[2, 3, 1], activations=["tanh", "identity"], loss="mse", dtype="float64",
        task="regression", classes=None, standardization={"mean": mean, "std": std},
        stop_reason="epochs", epochs_run=100,
    )  # fmt: skip
    set_job(job_id, status="succeeded", finished_at=utcnow())
    return job_id, (W1, b1, W2, b2, np.array(mean), np.array(std))


def test_model_is_409_until_the_job_succeeded(client, auth, spec, row_counts):
    job_id = submit(client, auth, spec).get_json()["id"]
    before = row_counts()
    assert_problem(client.get(f"{JOBS}/{job_id}/model", headers=auth), 409)
    assert_problem(client.post(f"{JOBS}/{job_id}/predict", json={"X": [[0, 0]]}, headers=auth), 409)
    assert row_counts() == before


def test_model_returns_wb_and_theta_layouts(client, auth, set_job, store_model):
    job_id, (W1, b1, W2, b2, mean, std) = regression_model(client, auth, set_job, store_model)
    model = client.get(f"{JOBS}/{job_id}/model", headers=auth).get_json()
    assert model["layer_sizes"] == [2, 3, 1]
    assert np.allclose(model["wb"][0]["W"], W1)
    # Θ has the bias in column 0 and one row per unit of the next layer: shape (3, 3).
    theta1 = np.asarray(model["theta"][0])
    assert theta1.shape == (3, 3)
    assert np.allclose(theta1[:, 0], b1)
    assert np.allclose(theta1[:, 1:], W1.T)
    assert model["standardization"] == {"mean": mean.tolist(), "std": std.tolist()}


def test_predict_applies_the_stored_standardization(client, auth, set_job, store_model):
    job_id, (W1, b1, W2, b2, mean, std) = regression_model(client, auth, set_job, store_model)
    X = np.array([[1.0, -2.0], [3.0, 0.0], [-1.0, -1.5]])
    response = client.post(f"{JOBS}/{job_id}/predict", json={"X": X.tolist()}, headers=auth)
    assert response.status_code == 200

    Z = (X - mean) / std
    expected = np.tanh(Z @ W1 + b1) @ W2 + b2
    assert np.allclose(response.get_json()["predictions"], expected[:, 0])


def test_predict_returns_original_class_labels_and_probabilities(
    client, auth, spec, set_job, store_model
):
    job_id = submit(client, auth, spec).get_json()["id"]
    W = np.array([[2.0, -1.0, 0.0], [0.0, 1.0, -2.0]])
    b = np.zeros(3)
    store_model(
        job_id, [W], [b], layer_sizes=[2, 3], activations=["softmax"], loss="cross_entropy",
        dtype="float64", task="classification", classes=["cat", "dog", "eel"], standardization=None,
    )  # fmt: skip
    set_job(job_id, status="succeeded")
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    body = client.post(f"{JOBS}/{job_id}/predict", json={"X": X.tolist()}, headers=auth).get_json()
    logits = X @ W + b
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert body["predictions"] == ["cat", "dog", "eel"]
    assert np.allclose(body["probabilities"], probabilities)


def test_predict_checks_the_width_of_X(client, auth, set_job, store_model):
    job_id, _ = regression_model(client, auth, set_job, store_model)
    response = client.post(f"{JOBS}/{job_id}/predict", json={"X": [[1.0, 2.0, 3.0]]}, headers=auth)
    assert_problem(response, 422, ["body", "X"])


# --- tenant isolation ----------------------------------------------------------------


def test_another_tenant_sees_none_of_the_jobs(client, auth, make_key, spec, set_job, store_model):
    job_id, _ = regression_model(client, auth, set_job, store_model)
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    for method, path, body in [
        ("get", f"{JOBS}/{job_id}", None),
        ("get", f"{JOBS}/{job_id}/curve", None),
        ("get", f"{JOBS}/{job_id}/model", None),
        ("post", f"{JOBS}/{job_id}/predict", {"X": [[0.0, 0.0]]}),
        ("post", f"{JOBS}/{job_id}/cancel", None),
        ("delete", f"{JOBS}/{job_id}", None),
    ]:
        response = getattr(client, method)(path, json=body, headers=other)
        assert_problem(response, 404)
    assert client.get(JOBS, headers=other).get_json()["items"] == []
    assert client.get(f"{JOBS}/{job_id}", headers=auth).status_code == 200


# --- one sigmoid output unit for two classes ----------------------------------------


def one_unit_spec(generator: str, activation: str = "sigmoid", loss: str = "binary_cross_entropy"):
    return {
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": activation, "units": 1},
            "loss": loss,
        },
        "dataset": {"generator": generator, "n_samples": 40},
        "training": {"epochs": 5},
    }


def test_one_output_unit_is_accepted_for_two_classes(client, auth):
    response = submit(client, auth, one_unit_spec("moons"))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["spec"]["network"]["output"] == {"activation": "sigmoid", "units": 1}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (one_unit_spec("spirals"), "the data has 3 classes"),
        (one_unit_spec("moons", "softmax", "cross_entropy"), "needs a sigmoid output"),
    ],
)
def test_one_output_unit_needs_two_classes_and_a_sigmoid(client, auth, row_counts, spec, message):
    before = row_counts()
    body = assert_problem(submit(client, auth, spec), 422, ["body", "network", "output", "units"])
    assert message in body["detail"]
    assert row_counts() == before
