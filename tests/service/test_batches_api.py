"""``/api/v1/batches`` through the Flask test client, on SQLite and the embedded
filesystem broker: what is stored, what is sent to which queue, and every error path."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json

import pytest
from sqlalchemy import func, select

from service import heartbeats, job_claim, job_finish, job_progress
from service.app import create_app
from service.models import Batch, Job
from service.problems import PROBLEM_MEDIA_TYPE

BASE = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0, "validation_split": 0.25},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 20},
}
GRID = {"training.optimizer.learning_rate": [0.01, 0.1], "network.layers.0.units": [4, 8, 16]}


@pytest.fixture
def settings(settings):
    """The shared test settings (SQLite copy, filesystem broker) with a small batch limit."""
    return dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, batch_jobs=50))


@pytest.fixture
def env(settings, sessions, make_key):
    keys = {name: make_key(name) for name in ("alice", "bob")}
    # A worker with a slot for every job, so a submit's dispatch pass sends them all.
    heartbeats.beat(sessions, "test-worker", slots=100)
    return settings, sessions, keys, settings.broker_dir / "queue"


def auth(env, tenant="alice"):
    return {"Authorization": f"Bearer {env[2][tenant]}"}


def sent(env):
    """(job id, queue) of every message waiting in the filesystem broker."""
    messages = []
    folder = env[3]
    for path in sorted(folder.glob("*.msg")) if folder.exists() else []:
        payload = json.loads(path.read_bytes())
        args = json.loads(base64.b64decode(payload["body"]))[0]
        messages.append((args[0], path.name.rsplit(".", 2)[-2]))
    return messages


def counts(env):
    with env[1]() as session:
        return (
            session.scalar(select(func.count()).select_from(Batch)),
            session.scalar(select(func.count()).select_from(Job)),
        )


def post(client, body, headers):
    """POST a batch keeping the key order (the test client's ``json=`` sorts keys, and a
    grid's first path varies slowest)."""
    return client.post(
        "/api/v1/batches",
        data=json.dumps(body),
        headers={**headers, "Content-Type": "application/json"},
    )


def post_grid(client, env, tenant="alice", **extra):
    body = {"name": "sweep", "base": BASE, "grid": GRID}
    return post(client, body, {**auth(env, tenant), **extra})


def test_a_grid_is_accepted_stored_and_sent_to_the_batch_queue(client, env):
    response = post_grid(client, env)
    assert response.status_code == 202
    batch = response.get_json()
    assert response.headers["Location"] == f"/api/v1/batches/{batch['id']}"
    assert batch["size"] == 6
    assert batch["kind"] == "grid"
    assert batch["varied"] == list(GRID)
    assert batch["counts"]["queued"] == 6
    assert sorted(sent(env)) == sorted((job_id, "batch") for job_id in batch["job_ids"])
    job = client.get(f"/api/v1/jobs/{batch['job_ids'][5]}", headers=auth(env)).get_json()
    assert job["batch_id"] == batch["id"]
    assert job["queue"] == "batch"
    assert job["params"] == {"training.optimizer.learning_rate": 0.1, "network.layers.0.units": 16}
    assert job["spec"]["network"]["layers"][0]["units"] == 16


def test_single_jobs_go_to_the_interactive_queue(client, env):
    response = client.post("/api/v1/jobs", json=BASE, headers=auth(env))
    assert response.status_code == 202
    assert sent(env) == [(response.get_json()["id"], "interactive")]


def test_an_invalid_combination_rejects_the_batch_stores_and_sends_nothing(client, env):
    grid = {"network.layers.0.units": [4, 0], "training.epochs": [5, 10]}
    response = post(client, {"name": "bad", "base": BASE, "grid": grid}, auth(env))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    problem = response.get_json()
    assert [e["loc"] for e in problem["errors"]] == [
        ["body", "base", "network", "layers", 0, "units"]
    ] * 2
    assert problem["errors"][0]["msg"].startswith(
        "job 2 (network.layers.0.units=0, training.epochs=5)"
    )
    assert counts(env) == (0, 0)
    assert sent(env) == []


def test_a_bad_job_in_a_list_is_named_by_index_and_field(client, env):
    bad = json.loads(json.dumps(BASE))
    bad["training"]["optimizer"]["learning_rate"] = -0.5
    body = {"name": "list", "jobs": [BASE, BASE, BASE, bad]}
    response = post(client, body, auth(env))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["loc"] == [
        "body", "jobs", 3, "training", "optimizer", "learning_rate",
    ]  # fmt: skip
    assert counts(env) == (0, 0)
    assert sent(env) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x", "base": BASE, "grid": {"training.seed": list(range(51))}}, 422),
        ({"name": "x", "base": BASE}, 422),
        ({"name": "", "base": BASE, "grid": GRID}, 422),
        ({"name": "x", "base": BASE, "grid": GRID, "extra": 1}, 422),
        (
            {
                "name": "x",
                "base": BASE,
                "random": {"training.l2": {"uniform": [1, 0]}},
                "samples": 2,
            },
            422,
        ),
    ],
)
def test_bad_requests_are_problems_and_store_nothing(client, env, body, status):
    response = client.post("/api/v1/batches", json=body, headers=auth(env))
    assert response.status_code == status
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    assert response.get_json()["errors"]
    assert counts(env) == (0, 0)


def test_malformed_json_and_missing_keys(client, env):
    response = client.post(
        "/api/v1/batches",
        data="{not json",
        headers={**auth(env), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert client.post("/api/v1/batches", json={"name": "x"}).status_code == 401
    assert client.get("/api/v1/batches").status_code == 401


def test_random_sweeps_reproduce_from_their_seed(client, env):
    body = {
        "name": "random",
        "base": BASE,
        "random": {
            "training.optimizer.learning_rate": {"loguniform": [1e-3, 1.0]},
            "network.layers.0.units": {"randint": [2, 32]},
            "network.layers.0.activation": {"choice": ["tanh", "relu"]},
        },
        "samples": 4,
        "seed": 123,
    }
    params = []
    for _ in range(2):
        batch = post(client, body, auth(env)).get_json()
        summary = client.get(f"/api/v1/batches/{batch['id']}", headers=auth(env)).get_json()
        params.append([job["params"] for job in summary["jobs"]])
    assert params[0] == params[1]
    assert len({p["training.optimizer.learning_rate"] for p in params[0]}) == 4


def test_idempotency_key_returns_the_first_batch_and_sends_once(client, env):
    key = {"Idempotency-Key": "sweep-1"}
    first = post_grid(client, env, **key)
    again = post_grid(client, env, **key)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["job_ids"] == first.get_json()["job_ids"]
    assert counts(env) == (1, 6)
    assert len(sent(env)) == 6
    other = client.post(
        "/api/v1/batches",
        json={"name": "different", "base": BASE, "grid": GRID},
        headers={**auth(env), **key},
    )
    assert other.status_code == 422
    assert other.get_json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


def test_tenants_see_only_their_batches(client, env):
    batch = post_grid(client, env).get_json()
    mine = post_grid(client, env, tenant="bob").get_json()
    for method, path in (
        ("get", f"/api/v1/batches/{batch['id']}"),
        ("get", f"/api/v1/batches/{batch['id']}/curves"),
        ("post", f"/api/v1/batches/{batch['id']}/cancel"),
    ):
        response = getattr(client, method)(path, headers=auth(env, "bob"))
        assert response.status_code == 404, path
        assert response.mimetype == PROBLEM_MEDIA_TYPE
    listed = client.get("/api/v1/batches", headers=auth(env, "bob")).get_json()
    assert [b["id"] for b in listed["items"]] == [mine["id"]]
    statuses = client.get(f"/api/v1/batches/{batch['id']}", headers=auth(env)).get_json()["counts"]
    assert statuses["queued"] == 6


def test_list_is_newest_first_and_paginated(client, env):
    ids = [post_grid(client, env).get_json()["id"] for _ in range(3)]
    first = client.get("/api/v1/batches?limit=2", headers=auth(env)).get_json()
    assert [b["id"] for b in first["items"]] == ids[::-1][:2]
    assert first["items"][0]["size"] == 6
    assert first["items"][0]["progress"] == {"finished": 0, "total": 6, "fraction": 0.0}
    rest = client.get(
        f"/api/v1/batches?limit=2&cursor={first['next_cursor']}", headers=auth(env)
    ).get_json()
    assert [b["id"] for b in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None


def drive(factory, job_id, first, last, finish=False):
    """Play a run's writes through the run-side domain, as a worker does."""
    claimed = job_claim.claim(factory, job_id, "test", lease_seconds=60, max_attempts=3)
    attempt = claimed.attempt if claimed else None
    if attempt is None:  # already ours from an earlier call
        with factory() as session:
            attempt = session.get(Job, job_id).attempt
    points = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "val_loss": 2 / e,
            "val_accuracy": e / 100,
            "seconds": 0.01,
        }
        for e in range(first, last + 1)
    ]
    assert job_progress.flush(factory, job_id, attempt, points, lease_seconds=60).alive
    if finish:
        assert job_finish.finish_succeeded(factory, job_id, attempt, weights=b"", meta={})


def test_summary_best_job_metric_validation_and_etag(client, env):
    batch = post_grid(client, env).get_json()
    ids = batch["job_ids"]
    drive(env[1], ids[0], 1, 20, finish=True)
    drive(env[1], ids[1], 1, 10, finish=True)  # early-stopped: higher final loss
    drive(env[1], ids[2], 1, 5)
    url = f"/api/v1/batches/{batch['id']}"
    response = client.get(url + "?metric=val_loss&mode=min", headers=auth(env))
    summary = response.get_json()
    assert summary["best"] == {"id": ids[0], "value": pytest.approx(0.1)}
    assert summary["counts"]["succeeded"] == 2
    assert summary["counts"]["running"] == 1
    assert summary["progress"]["finished"] == 2
    assert summary["progress"]["fraction"] == pytest.approx((1 + 1 + 0.25) / 6)
    assert [j["status"] for j in summary["jobs"]][:3] == ["succeeded", "succeeded", "running"]
    listed = client.get("/api/v1/batches", headers=auth(env)).get_json()["items"][0]
    assert listed["progress"] == summary["progress"]  # one SQL aggregate, same numbers
    assert summary["jobs"][1]["metrics"]["val_loss"] == pytest.approx(0.2)
    by_accuracy = client.get(url + "?metric=val_accuracy", headers=auth(env)).get_json()
    assert by_accuracy["best"]["id"] == ids[0]
    assert by_accuracy["mode"] == "max"
    again = client.get(
        url + "?metric=val_loss&mode=min",
        headers={**auth(env), "If-None-Match": response.headers["ETag"]},
    )
    assert again.status_code == 304
    drive(env[1], ids[2], 6, 6)
    changed = client.get(
        url + "?metric=val_loss&mode=min",
        headers={**auth(env), "If-None-Match": response.headers["ETag"]},
    )
    assert changed.status_code == 200
    for query, loc in (("?metric=accuracy", "metric"), ("?mode=median", "mode")):
        bad = client.get(url + query, headers=auth(env))
        assert bad.status_code == 422
        assert bad.get_json()["errors"][0]["loc"] == ["query", loc]


def test_curves_return_only_new_points_across_jobs_at_different_speeds(client, env):
    batch = post_grid(client, env).get_json()
    ids = batch["job_ids"]
    url = f"/api/v1/batches/{batch['id']}/curves"
    drive(env[1], ids[0], 1, 8)
    drive(env[1], ids[3], 1, 2)
    first = client.get(url, headers=auth(env)).get_json()
    epochs = {j["id"]: [p["epoch"] for p in j["points"]] for j in first["jobs"]}
    assert [j["id"] for j in first["jobs"]] == ids
    assert epochs[ids[0]] == list(range(1, 9))
    assert epochs[ids[3]] == [1, 2]
    assert sum(map(len, epochs.values())) == 10
    drive(env[1], ids[0], 9, 9)
    drive(env[1], ids[3], 3, 5)
    drive(env[1], ids[5], 1, 1)
    second = client.get(url, query_string={"cursor": first["next_cursor"]}, headers=auth(env))
    epochs = {j["id"]: [p["epoch"] for p in j["points"]] for j in second.get_json()["jobs"]}
    assert epochs == {
        ids[0]: [9],
        ids[3]: [3, 4, 5],
        ids[5]: [1],
        ids[1]: [],
        ids[2]: [],
        ids[4]: [],
    }
    # max_points is a cap per job: every job's whole curve, downsampled past it.
    capped = client.get(url, query_string={"max_points": 4}, headers=auth(env)).get_json()
    assert all(len(j["points"]) <= 4 for j in capped["jobs"])
    assert {j["id"]: j["points"][-1]["epoch"] for j in capped["jobs"] if j["points"]} == {
        ids[0]: 9, ids[3]: 5, ids[5]: 1
    }  # fmt: skip
    assert not capped["truncated"]
    assert not capped["complete"]
    bad = client.get(url, query_string={"cursor": "garbage"}, headers=auth(env))
    assert bad.status_code == 422
    other = post_grid(client, env).get_json()
    foreign = client.get(
        f"/api/v1/batches/{other['id']}/curves",
        query_string={"cursor": first["next_cursor"]},
        headers=auth(env),
    )
    assert foreign.status_code == 422
    assert foreign.get_json()["errors"][0]["loc"] == ["query", "cursor"]


def test_cancel_ends_queued_jobs_and_flags_running_ones(client, env):
    batch = post_grid(client, env).get_json()
    ids = batch["job_ids"]
    drive(env[1], ids[0], 1, 3, finish=True)
    drive(env[1], ids[1], 1, 3)
    response = client.post(f"/api/v1/batches/{batch['id']}/cancel", headers=auth(env))
    assert response.status_code == 202
    result = response.get_json()
    assert result["cancelled"] == ids[1:]
    assert result["counts"] == {
        "queued": 0, "running": 0, "cancelling": 1, "succeeded": 1, "failed": 0, "cancelled": 4,
    }  # fmt: skip
    job = client.get(f"/api/v1/jobs/{ids[1]}", headers=auth(env)).get_json()
    assert job["status"] == "cancelling"
    assert job["cancel_requested"]


def dispatched(env, batch_id):
    with env[1]() as session:
        rows = session.execute(
            select(Job.status, Job.dispatched_at).where(Job.batch_id == batch_id)
        ).all()
    return [(status, stamp is not None) for status, stamp in rows]


def test_sent_jobs_record_their_dispatch(client, env):
    batch = post_grid(client, env).get_json()
    assert dispatched(env, batch["id"]) == [("queued", True)] * 6


def test_a_broker_outage_leaves_the_batch_queued_for_the_reaper(env, tmp_path):
    _, factory, keys, _ = env
    url = str(factory.kw["bind"].url)
    down = create_app(
        {"database_url": url, "data_dir": tmp_path, "broker_url": "redis://127.0.0.1:1/0"}
    )
    response = post(down.test_client(), {"name": "offline", "base": BASE, "grid": GRID}, auth(env))
    assert response.status_code == 202
    assert dispatched(env, response.get_json()["id"]) == [("queued", False)] * 6
    down.extensions["deltaflow"].engine.dispose()


def drive_scaled(factory, job_id, last, scale):
    """A finished run whose losses are ``scale`` times the same curve (train 1/e, val 2/e)."""
    claimed = job_claim.claim(factory, job_id, "test", lease_seconds=60, max_attempts=3)
    points = [
        {"epoch": e, "train_loss": scale / e, "val_loss": 2 * scale / e, "seconds": 0.01}
        for e in range(1, last + 1)
    ]
    assert job_progress.flush(factory, job_id, claimed.attempt, points, lease_seconds=60).alive
    assert job_finish.finish_succeeded(factory, job_id, claimed.attempt, weights=b"", meta={})


def test_band_quantiles_best_k_and_the_nearest_job(client, env):
    batch = post_grid(client, env).get_json()
    ids = batch["job_ids"]
    for scale, job_id in enumerate(ids[:5], start=1):
        drive_scaled(env[1], job_id, 20, scale)
    url = f"/api/v1/batches/{batch['id']}"
    response = client.get(url + "/band?k=3&points=5", headers=auth(env))
    assert response.status_code == 200, response.get_json()
    got = response.get_json()
    assert (got["metric"], got["mode"], got["metric_defaulted"]) == ("val_loss", "min", True)
    assert (got["jobs"], got["ranked"]) == (6, 5)  # the sixth is still queued
    epochs = got["band"]["epoch"]
    assert epochs[0] == 1
    assert epochs[-1] == 20
    assert len(epochs) == 5
    assert got["band"]["count"] == [5] * 5
    finals = [2 * s / 20 for s in range(1, 6)]  # 0.1 ... 0.5 at epoch 20
    assert got["band"]["p50"][-1] == pytest.approx(0.3)
    assert got["band"]["p10"][-1] == pytest.approx(0.14)
    assert got["band"]["p90"][-1] == pytest.approx(0.46)
    assert [j["id"] for j in got["top"]] == ids[:3]
    assert [j["value"] for j in got["top"]] == pytest.approx(finals[:3])
    assert got["top"][0]["params"] == {
        "training.optimizer.learning_rate": 0.01,
        "network.layers.0.units": 4,
    }
    assert got["best"] == {"id": ids[0], "value": pytest.approx(0.1)}
    # Accuracies rank highest first; a bad metric is 422 naming it.
    by_train = client.get(url + "/band?metric=train_loss&mode=max&k=1", headers=auth(env))
    assert by_train.get_json()["top"][0]["id"] == ids[4]
    bad = client.get(url + "/band?metric=loss", headers=auth(env))
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["loc"] == ["query", "metric"]

    # Unchanged: 304 on the ETag; any job's write changes it.
    etag = response.headers["ETag"]
    again = client.get(url + "/band?k=3&points=5", headers={**auth(env), "If-None-Match": etag})
    assert again.status_code == 304
    drive_scaled(env[1], ids[5], 10, 0.25)
    changed = client.get(url + "/band?k=3&points=5", headers={**auth(env), "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.get_json()["top"][0]["id"] == ids[5]  # 0.05 at epoch 10: the best now

    # The job under the pointer: nearest on a log scale at that epoch.
    near = client.get(url + "/nearest?metric=val_loss&epoch=20&value=0.39", headers=auth(env))
    assert near.get_json()["job"]["id"] == ids[3]
    assert near.get_json()["job"]["value"] == pytest.approx(0.4)
    beyond = client.get(url + "/nearest?metric=val_loss&epoch=21&value=0.3", headers=auth(env))
    assert beyond.get_json()["job"] is None
    # Another tenant's batch is as missing as an unknown one.
    for suffix in ("/band", "/nearest?metric=val_loss&epoch=1&value=1"):
        assert client.get(url + suffix, headers=auth(env, "bob")).status_code == 404


def test_band_of_a_batch_without_validation_ranks_by_training_loss(client, env, settings):
    body = {"name": "no val", "base": {**BASE, "dataset": {**BASE["dataset"]}}, "grid": GRID}
    del body["base"]["dataset"]["validation_split"]
    ids = post(client, body, auth(env)).get_json()["job_ids"]
    claimed = job_claim.claim(env[1], ids[0], "test", lease_seconds=60, max_attempts=3)
    points = [{"epoch": e, "train_loss": 1 / e, "seconds": 0.01} for e in (1, 2, 3)]
    assert job_progress.flush(env[1], ids[0], claimed.attempt, points, lease_seconds=60).alive
    batch_id = client.get(f"/api/v1/jobs/{ids[0]}", headers=auth(env)).get_json()["batch_id"]
    got = client.get(f"/api/v1/batches/{batch_id}/band", headers=auth(env)).get_json()
    assert (got["metric"], got["metric_defaulted"], got["ranked"]) == ("train_loss", True, 1)
    assert got["band"]["p50"] == pytest.approx([1, 0.5, 1 / 3])
    assert got["best"] is None  # still running: ranked in top, not yet the best
    assert [j["id"] for j in got["top"]] == [ids[0]]


def test_a_large_answer_is_gzipped_for_a_client_that_accepts_it(client, env):
    batch = post_grid(client, env).get_json()
    for scale, job_id in enumerate(batch["job_ids"], start=1):
        drive_scaled(env[1], job_id, 200, scale)
    url = f"/api/v1/jobs/{batch['job_ids'][0]}/curve"
    plain = client.get(url, headers=auth(env))
    assert "Content-Encoding" not in plain.headers
    assert len(plain.data) > 8192
    packed = client.get(url, headers={**auth(env), "Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert len(packed.data) < len(plain.data) / 3
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    refused = client.get(url, headers={**auth(env), "Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
    small = client.get(
        f"/api/v1/jobs/{batch['job_ids'][0]}", headers={**auth(env), "Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in small.headers
