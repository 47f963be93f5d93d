"""Curves that scale (issue 13), on SQLite and PostgreSQL: M4 downsampling keeps the first
and last epochs and each requested field's minimum and maximum, ``max_points`` is a hard
cap (per job in a batch), ``from_epoch``/``to_epoch`` bound the range, ``fields`` chooses
what comes (gradient norms and activation statistics only when asked), ``format=columns``
lays the same values out by column, and the stored levels the downsampling reads stay
equal to levels rebuilt from the points (appends, resumed re-flushes, PBT continuations).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from service import curve_store
from service.db import transaction
from service.models import CurvePoint, Job, curve_levels
from service.schemas.records import DEFAULT_CURVE_FIELDS, NUMERIC_FIELDS

JOBS = "/api/v1/jobs"
SPEC: dict[str, Any] = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 1},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 5000},
}


def noisy_points(first: int, last: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    points = []
    for epoch in range(first, last + 1):
        loss = 1.0 / (1 + epoch / 300) + 0.05 * rng.random()
        points.append(
            {
                "epoch": epoch,
                "train_loss": loss,
                "val_loss": loss * (1 + 0.2 * rng.random()),
                "train_accuracy": rng.random(),
                "val_accuracy": None if epoch % 7 == 0 else rng.random(),
                "learning_rate": 0.01,
                "grad_norms": {"D": [rng.random()], "update_ratio": [0.001]},
                "seconds": 0.01 * rng.random(),
                "activation_stats": [{"layer": 1, "dead_fraction": 0.0, "mean": 0.1}],
            }
        )
    return points


@pytest.fixture
def curve_app(backend_app):
    """(flask client, auth, store(job_id, points)) on each database."""
    app, auth = backend_app
    sessions = app.extensions["deltaflow"].sessions

    def store(job_id: str, points: list[dict[str, Any]], flush: int = 97) -> None:
        for start in range(0, len(points), flush):  # as runs flush: a block at a time
            chunk = points[start : start + flush]
            with transaction(sessions) as session:
                curve_store.insert_points(session, job_id, chunk)
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.epoch < chunk[-1]["epoch"])
                    .values(epoch=chunk[-1]["epoch"], version=Job.version + 1)
                )

    return app.test_client(), auth, store, sessions


def new_job(client, auth) -> str:
    response = client.post(JOBS, json=SPEC, headers=auth)
    assert response.status_code == 202
    return response.get_json()["id"]


def extremes(points: list[dict[str, Any]], fields: tuple[str, ...]) -> set[int]:
    """The epochs M4 must keep: first, last, and each field's earliest min and max."""
    keep = {points[0]["epoch"], points[-1]["epoch"]}
    for name in fields:
        if name not in NUMERIC_FIELDS:
            continue
        valued = [p for p in points if p[name] is not None]
        keep.add(min(valued, key=lambda p: (p[name], p["epoch"]))["epoch"])
        keep.add(min(valued, key=lambda p: (-p[name], p["epoch"]))["epoch"])
    return keep


def check_downsampled(answer, stored, fields, cap):
    got = answer["points"]
    epochs = [p["epoch"] for p in got]
    assert 2 <= len(epochs) <= cap
    assert epochs == sorted(set(epochs))
    assert extremes(stored, fields) <= set(epochs)
    by_epoch = {p["epoch"]: p for p in stored}
    for point in got:  # stored values, never made up; only the asked fields
        assert point == {
            "epoch": point["epoch"],
            **{f: by_epoch[point["epoch"]][f] for f in fields},
        }


@pytest.mark.parametrize("cap", [3, 12, 500])
def test_downsampling_keeps_first_last_min_and_max_under_the_cap(curve_app, cap):
    client, auth, store, _ = curve_app
    job_id = new_job(client, auth)
    points = noisy_points(1, 3000)
    points[1776]["val_loss"] = -5.0  # a spike M4 must keep
    points[2222]["train_loss"] = 99.0
    store(job_id, points)
    answer = client.get(f"{JOBS}/{job_id}/curve?max_points={cap}", headers=auth).get_json()
    if cap < 10:  # under 2 + 2 x 4 fields: first, last, then extremes in field order
        lowest = min(points, key=lambda p: p["train_loss"])["epoch"]
        assert [p["epoch"] for p in answer["points"]] == sorted([1, lowest, 3000])
    else:
        check_downsampled(answer, points, DEFAULT_CURVE_FIELDS, cap)
        assert {1777, 2223} <= {p["epoch"] for p in answer["points"]}
    assert (answer["next_since"], answer["complete"]) == (3000, False)
    # A curve no longer than the cap comes whole.
    whole = client.get(f"{JOBS}/{job_id}/curve?max_points=3000", headers=auth).get_json()
    assert [p["epoch"] for p in whole["points"]] == list(range(1, 3001))


def test_ranges_fields_and_columns(curve_app):
    client, auth, store, _ = curve_app
    job_id = new_job(client, auth)
    points = noisy_points(1, 2500, seed=3)
    store(job_id, points)
    inside = points[999:2000]  # epochs 1000..2000
    url = f"{JOBS}/{job_id}/curve?from_epoch=1000&to_epoch=2000&max_points=40"
    answer = client.get(url, headers=auth).get_json()
    check_downsampled(answer, inside, DEFAULT_CURVE_FIELDS, 40)
    assert (answer["points"][0]["epoch"], answer["points"][-1]["epoch"]) == (1000, 2000)
    # Other fields: only what is named, with M4 over the named numbers.
    fields = ("seconds", "grad_norms")
    asked = client.get(f"{url}&fields=seconds,grad_norms", headers=auth).get_json()
    check_downsampled(asked, inside, fields, 40)
    stats = client.get(f"{url}&fields=activation_stats", headers=auth).get_json()
    assert stats["points"][0]["activation_stats"][0]["layer"] == 1
    # Columns: the same values, laid out by field.
    columns = client.get(f"{url}&format=columns", headers=auth).get_json()
    assert "points" not in columns
    assert columns["columns"]["epoch"] == [p["epoch"] for p in answer["points"]]
    assert columns["columns"]["val_loss"] == [p["val_loss"] for p in answer["points"]]
    # Without max_points: exactly the range, in pages.
    plain = client.get(f"{JOBS}/{job_id}/curve?from_epoch=10&to_epoch=19", headers=auth)
    assert [p["epoch"] for p in plain.get_json()["points"]] == list(range(10, 20))
    assert plain.get_json()["next_since"] == 19
    # A field that does not exist is a 422 naming the parameter.
    bad = client.get(f"{JOBS}/{job_id}/curve?fields=train_loss,weights", headers=auth)
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["loc"] == ["query", "fields"]
    # Different asks of the same job have different ETags.
    tags = {client.get(u, headers=auth).headers["ETag"] for u in (url, f"{url}&format=columns")}
    assert len(tags) == 2


def test_batch_curves_cap_each_job_and_cover_the_batch_in_one_answer(curve_app):
    client, auth, store, _ = curve_app
    body = {"name": "overview", "jobs": [SPEC] * 3}
    batch = client.post("/api/v1/batches", json=body, headers=auth).get_json()
    stored = {}
    for index, job_id in enumerate(batch["job_ids"]):
        stored[job_id] = noisy_points(1, 400 + 500 * index, seed=index)
        store(job_id, stored[job_id])
    path = f"/api/v1/batches/{batch['id']}/curves"
    answer = client.get(f"{path}?max_points=30", headers=auth).get_json()
    assert answer["truncated"] is False
    for job in answer["jobs"]:
        check_downsampled(job, stored[job["id"]], DEFAULT_CURVE_FIELDS, 30)
    # The cursor moved to each job's last epoch: the next poll is empty.
    again = client.get(f"{path}?max_points=30&cursor={answer['next_cursor']}", headers=auth)
    assert all(job["points"] == [] for job in again.get_json()["jobs"])
    # A range and columns, per job.
    ranged = client.get(f"{path}?max_points=10&from_epoch=100&to_epoch=300&format=columns",
                        headers=auth).get_json()  # fmt: skip
    for job in ranged["jobs"]:
        epochs = job["columns"]["epoch"]
        assert len(epochs) <= 10
        assert (epochs[0], epochs[-1]) == (100, 300)
        assert extremes(stored[job["id"]][99:300], DEFAULT_CURVE_FIELDS) <= set(epochs)


def levels_of(session, job_id: str) -> list[tuple[Any, ...]]:
    query = select(curve_levels).where(curve_levels.c.job_id == job_id)
    return sorted(tuple(row) for row in session.execute(query))


def rebuilt(session, job_id: str) -> list[tuple[Any, ...]]:
    """The levels written from scratch from the points now stored (then put back)."""
    before = levels_of(session, job_id)
    session.execute(delete(curve_levels).where(curve_levels.c.job_id == job_id))
    last = session.scalar(select(CurvePoint.epoch).where(CurvePoint.job_id == job_id)
                          .order_by(CurvePoint.epoch.desc()).limit(1))  # fmt: skip
    if last is not None:
        curve_store.refresh_levels(session, job_id, 1, last)
    fresh = levels_of(session, job_id)
    session.rollback()
    assert levels_of(session, job_id) == before
    return fresh


def test_levels_stay_right_through_resumes_and_pbt_continuations(curve_app):
    client, auth, store, sessions = curve_app
    parent, child = new_job(client, auth), new_job(client, auth)
    store(parent, noisy_points(1, 5000, seed=1), flush=333)
    store(child, noisy_points(1, 700, seed=2), flush=50)
    with sessions() as session:
        assert levels_of(session, parent) == rebuilt(session, parent)
        assert levels_of(session, child) == rebuilt(session, child)
    # A resumed run flushes epochs again (skipped as already stored).
    store(child, noisy_points(650, 900, seed=2), flush=40)
    with sessions() as session:
        assert levels_of(session, child) == rebuilt(session, child)
    # PBT: the child takes the parent's checkpoint at 4100 (ahead: copied 901..4100),
    # then another's at 2050 (behind: its tail after 2050 goes).
    for epoch, last in ((4100, 900), (2050, 4100)):
        with transaction(sessions) as session:
            curve_store.continue_from(session, child, parent, last, epoch)
        with sessions() as session:
            assert levels_of(session, child) == rebuilt(session, child)
            last_epoch = curve_levels.c.last_epoch
            mine = select(last_epoch).where(curve_levels.c.job_id == child)
            assert session.scalar(mine.order_by(last_epoch.desc()).limit(1)) == epoch
