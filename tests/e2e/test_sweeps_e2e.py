"""Steering sweeps on real workers (PostgreSQL, Redis, Celery processes), with the API and
the worker restarted in the middle: a TPE search keeps its concurrency and makes each trial
once; a PBT population's exploits stand and every trial's curve has each epoch once."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from service.db import transaction
from service.models import CurvePoint, Job, TrialDecision
from service.schemas.names import FINISHED
from tests.e2e.test_batches_e2e import BASE, api_client, finished, jobs_of, submit
from tests.support.fixtures import (  # noqa: F401 (fixtures)
    postgres_server,
    production_backend,
    redis_server,
    worker_process,
)
from tests.support.jobs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def curve_epochs(backend, job_id: str) -> list[int]:
    with transaction(backend.factory) as session:
        return list(
            session.scalars(
                select(CurvePoint.epoch)
                .where(CurvePoint.job_id == job_id)
                .order_by(CurvePoint.epoch)
            )
        )


def unfinished(backend, batch_id: str) -> int:
    with transaction(backend.factory) as session:
        return session.scalar(
            select(func.count()).where(
                Job.batch_id == batch_id, Job.status.not_in([s.value for s in FINISHED])
            )
        )


def test_tpe_search_survives_a_restart_of_the_api_and_the_worker(
    production_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    backend = production_backend
    base = copy.deepcopy(BASE)
    base["training"]["epochs"] = 1500
    body: dict[str, Any] = {
        "name": "tpe",
        "base": base,
        "search": {
            "name": "tpe",
            "space": {
                "training.optimizer.learning_rate": {"loguniform": [1e-3, 0.3]},
                "network.layers.0.units": {"randint": [2, 8]},
            },
            "trials": 6,
            "max_concurrent": 2,
            "seed": 4,
            "startup_trials": 2,
        },
    }
    worker = worker_process(backend, concurrency=2)
    with api_client(backend) as api:
        batch = submit(api, body).get_json()
    assert len(batch["job_ids"]) == 2
    in_flight: list[int] = []

    def two_done() -> bool:
        in_flight.append(unfinished(backend, batch["id"]))
        rows = jobs_of(backend, batch["id"])
        done = sum(job.status in FINISHED for job in rows)
        return done >= 2 and any(job.status == "running" for job in rows)

    wait_for(two_done, timeout=120, what="two trials finished and one running")
    worker.kill()  # the machine dies mid-trial; the API goes too
    worker_process(backend, concurrency=2)
    with api_client(backend) as api:

        def all_made() -> list[Job] | None:
            in_flight.append(unfinished(backend, batch["id"]))
            rows = finished(backend, batch["id"])
            return rows if rows and len(rows) == 6 else None

        rows = wait_for(all_made, timeout=180, interval=0.1, what="six finished trials")
        summary = api.get(f"/api/v1/batches/{batch['id']}").get_json()
    assert max(in_flight) <= 2  # max_concurrent held throughout
    assert [job.batch_index for job in rows] == list(range(6))  # each trial made once
    assert [job.origin["trial"] for job in rows] == list(range(6))
    assert all(job.origin["kind"] == "tpe" for job in rows)
    assert max(job.attempt for job in rows) >= 2  # the interrupted trial was run again
    assert [job.status for job in rows] == ["succeeded"] * 6
    for job in rows:
        assert curve_epochs(backend, job.id) == list(range(1, 1501))
    assert summary["search"]["growing"] is False
    assert summary["kind"] == "tpe"
    assert summary["size"] == 6
    assert [j["origin"]["kind"] for j in summary["jobs"]] == ["tpe"] * 6


def test_pbt_exploits_stand_across_a_restart_and_curves_keep_one_point_per_epoch(
    production_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    backend = production_backend
    base = copy.deepcopy(BASE)
    base["training"]["epochs"] = 2000
    body = {
        "name": "pbt",
        "base": base,
        "grid": {"training.optimizer.learning_rate": [0.05, 0.02, 1e-4, 3e-5]},
        "scheduler": {
            "name": "pbt",
            "interval_epochs": 100,
            "quantile": 0.25,
            "resample_probability": 0.0,
            "seed": 2,
        },
    }
    worker = worker_process(backend, concurrency=4)
    with api_client(backend) as api:
        batch = submit(api, body).get_json()

    def exploited() -> bool:
        with transaction(backend.factory) as session:
            return bool(
                session.scalar(
                    select(func.count()).where(
                        TrialDecision.batch_id == batch["id"], TrialDecision.action == "exploit"
                    )
                )
            )

    wait_for(exploited, timeout=120, what="a first exploit")
    worker.kill()
    worker_process(backend, concurrency=4)
    with api_client(backend) as api:
        rows = wait_for(lambda: finished(backend, batch["id"]), timeout=240, what="the batch")
        summary = api.get(f"/api/v1/batches/{batch['id']}").get_json()
    assert [job.status for job in rows] == ["succeeded"] * 4
    lineage = summary["lineage"]
    assert lineage, summary
    ids = {job.id for job in rows}
    for step in lineage:
        assert step["parent"] in ids
        assert step["parent"] != step["job_id"]
        assert 1 <= step["parent_epoch"] < 2000  # the parent's latest checkpoint
        assert step["perturbed"]
    with transaction(backend.factory) as session:
        decisions = session.execute(
            select(TrialDecision.job_id, TrialDecision.generation, TrialDecision.action).where(
                TrialDecision.batch_id == batch["id"]
            )
        ).all()
    for job in rows:
        exploits = [d for d in decisions if d.job_id == job.id and d.action == "exploit"]
        # Each exploit was taken once and is the job's lineage: generations 0, 1, ...
        assert sorted(d.generation for d in exploits) == list(range(len(exploits)))
        if exploits:
            assert job.origin["kind"] == "pbt"
            assert job.origin["generation"] == len(exploits)
        assert curve_epochs(backend, job.id) == list(range(1, 2001))  # each epoch once
    assert max(job.attempt for job in rows) >= 2
