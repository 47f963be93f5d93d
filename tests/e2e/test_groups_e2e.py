"""Tiny jobs share messages end to end: the real API (in process) submits a batch of tiny
jobs, one dispatch pass packs them into groups (``service.dispatch.pack``), a real Celery
worker process runs each message's jobs (``worker.groups``). Nothing is mocked.

Runs on the embedded backend (SQLite + filesystem broker) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from service.db import transaction
from service.models import CurvePoint, Job
from tests.support.jobs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCHS = 15
JOBS = 20
# Work far under DELTAFLOW_GROUP_WORK (2e6): 15 epochs of a 2-4-2 network on 48 rows.
TINY: dict[str, Any] = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 64, "seed": 0, "validation_split": 0.25},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": EPOCHS},
}


def batch_jobs(factory, batch_id: str) -> list[Job]:
    with transaction(factory) as session:
        rows = list(
            session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.batch_index))
        )
        session.expunge_all()
        return rows


def stored_epochs(factory, job_id: str) -> list[int]:
    """Every stored curve row's epoch, in order, duplicates included."""
    with transaction(factory) as session:
        return list(
            session.scalars(
                select(CurvePoint.epoch)
                .where(CurvePoint.job_id == job_id)
                .order_by(CurvePoint.epoch)
            )
        )


def test_a_batch_of_tiny_jobs_runs_in_shared_messages_each_job_once(api, backend, running_worker):
    body = {"name": "tiny grid", "base": TINY, "grid": {"training.seed": list(range(JOBS))}}
    response = api.post("/batches", json=body)
    assert response.status_code == 202, response.get_json()
    batch = response.get_json()
    assert batch["size"] == JOBS
    factory = backend.factory

    def all_finished() -> list[Job] | None:
        rows = batch_jobs(factory, batch["id"])
        return rows if all(j.status in ("succeeded", "failed", "cancelled") for j in rows) else None

    rows = wait_for(all_finished, timeout=120, interval=0.1, what="the tiny batch to finish")
    settings = backend.settings()
    assert all(row.work is not None and row.work <= settings.group_work for row in rows)
    for row in rows:
        assert (row.status, row.attempt, row.epoch) == ("succeeded", 1, EPOCHS), row
        assert stored_epochs(factory, row.id) == list(range(1, EPOCHS + 1))
        assert [p["epoch"] for p in api.curve(row.id)] == list(range(1, EPOCHS + 1))
        model = api.get(f"/jobs/{row.id}/model")
        assert model.status_code == 200, model.get_json()
    # They shared messages: fewer messages (groups, and singles counting as themselves)
    # than jobs, no group beyond DELTAFLOW_GROUP_JOBS, each group's key its own (no job's).
    messages: dict[str, list[str]] = {}
    for row in rows:
        messages.setdefault(row.dispatch_group or row.id, []).append(row.id)
    assert len(messages) < JOBS, messages
    assert max(len(ids) for ids in messages.values()) > 1
    assert all(len(ids) <= settings.group_jobs for ids in messages.values())
    groups = {key for key, ids in messages.items() if len(ids) > 1}
    assert not groups & {row.id for row in rows}
    # The worker ran messages of several jobs: one task, several outcomes.
    log = running_worker.log()
    assert re.search(r"claimed attempt=1 in a group", log), log[-3000:]
    assert re.search(
        r"deltaflow\.train\[[^\]]+\] succeeded in [^:]+: 'succeeded(,succeeded)+'", log
    ), log[-3000:]
