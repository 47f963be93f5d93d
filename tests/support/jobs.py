"""Jobs for tests: tiny specs, direct inserts (for runner tests below the API), waiting."""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import CurvePoint, Job, Tenant, TrainedModel
from service.schemas.spec import JobSpec

T = TypeVar("T")


def tiny_spec(epochs: int = 30, **training: Any) -> dict[str, Any]:
    """A small spirals job: fast, deterministic, still a real network."""
    spec: dict[str, Any] = {
        "network": {
            "layers": [{"units": 8, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"generator": "spirals", "n_samples": 120, "seed": 1, "validation_split": 0.2},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.02},
            "epochs": epochs,
            "seed": 3,
            **training,
        },
    }
    return spec


def diverging_spec(epochs: int = 50) -> dict[str, Any]:
    """Plain gradient descent with a huge step on a regression: the loss overflows."""
    return {
        "network": {
            "layers": [{"units": 16, "activation": "relu"}],
            "output": {"activation": "identity"},
            "loss": "mse",
        },
        "dataset": {"generator": "plane", "n_samples": 64, "seed": 0},
        "training": {"optimizer": {"name": "gd", "learning_rate": 900.0}, "epochs": epochs},
    }


def validated(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the API stores it: validated, defaults filled in."""
    return JobSpec.model_validate(copy.deepcopy(spec)).model_dump(mode="json")


def insert_job(
    factory: sessionmaker[Session],
    spec: dict[str, Any],
    *,
    tenant: str = "tests",
    queue: str = "interactive",
    name: str = "test job",
    work: int | None = None,
) -> str:
    """A queued job row, as the API would commit it (no message sent); ``work`` is the
    estimated work the API stores (``service.budgets.run_work``): None, as for a job
    submitted before it was stored, never shares a message (``service.dispatch.pack``)."""
    stored = validated(spec)
    with transaction(factory) as session:
        owner = session.scalar(select(Tenant).where(Tenant.name == tenant))
        if owner is None:
            owner = Tenant(name=tenant)
            session.add(owner)
            session.flush()
        job = Job(
            tenant_id=owner.id,
            name=name,
            queue=queue,
            spec=stored,
            epochs=stored["training"]["epochs"],
            work=work,
        )
        session.add(job)
        session.flush()
        return job.id


def job_row(factory: sessionmaker[Session], job_id: str) -> Job:
    with transaction(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def curve_epochs(factory: sessionmaker[Session], job_id: str) -> list[int]:
    with transaction(factory) as session:
        return list(
            session.scalars(
                select(CurvePoint.epoch)
                .where(CurvePoint.job_id == job_id)
                .order_by(CurvePoint.epoch)
            )
        )


def curve_losses(factory: sessionmaker[Session], job_id: str) -> dict[int, float]:
    with transaction(factory) as session:
        rows = session.execute(
            select(CurvePoint.epoch, CurvePoint.train_loss).where(CurvePoint.job_id == job_id)
        ).all()
    return {row.epoch: row.train_loss for row in rows}


def model_arrays(factory: sessionmaker[Session], job_id: str) -> dict[str, np.ndarray]:
    with transaction(factory) as session:
        model = session.get(TrainedModel, job_id)
        assert model is not None, f"job {job_id} has no trained model"
        data = model.weights
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


def wait_for_status(
    factory: sessionmaker[Session], job_id: str, statuses: set[str], timeout: float = 60.0
) -> Job:
    def probe() -> Job | None:
        job = job_row(factory, job_id)
        return job if job.status in statuses else None

    return wait_for(probe, timeout=timeout, what=f"job {job_id} to reach {sorted(statuses)}")


def blow_up_spec(learning_rate: float, record: dict[str, bool] | None = None) -> dict[str, Any]:
    """Two relu layers under plain sgd on a regression plane: at 3.0 the loss is not finite
    in the first epoch; at 2.3 it stays finite while climbing by orders of magnitude (the
    gradients explode, the relu units die)."""
    return {
        "network": {
            "layers": [{"units": 16, "activation": "relu"}] * 2,
            "output": {"activation": "identity"},
            "loss": "mse",
            "init": {"scheme": "he"},
        },
        "dataset": {"generator": "plane", "n_samples": 200, "seed": 0, "n_features": 4},
        "training": {
            "optimizer": {"name": "sgd", "learning_rate": learning_rate},
            "epochs": 30,
            "batch_size": 16,
            "record": record or {"grad_norms": True},
        },
    }
