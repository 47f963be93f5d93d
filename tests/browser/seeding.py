"""A big sweep seeded straight into the database of the system under test.

Running 1,000 real jobs on the browser tests' one worker would take minutes, so the batch
is submitted through the kernel (``batches.submit_batch``: the jobs, params and origins
exactly as ``POST /batches`` stores them, nothing sent to a worker), and each job's run is
then written in one transaction: its curve with ``curve_store.insert_points`` (what a run's
flush uses) and its end state on the job row. The curves are synthetic but shaped like
training: a decay to a floor whose speed and height follow the sampled learning rate,
noise, some runs ending early, a few diverging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select, update

from service import batches, curve_store, generators, summaries, trained
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Job, Tenant, TenantQuota, TrainedModel
from service.schemas.batch import BatchSubmit
from service.schemas.records import point_values
from service.timeutil import utcnow
from worker.nn import Network

BASE = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 60},
}


@dataclass
class Seeded:
    batch_id: str
    job_ids: list[str]
    epochs: int
    running: list[str]  # left running halfway with the best losses: finish_running ends them
    data_dir: Path
    validation: bool


def _curve(rng: np.random.Generator, lr: float, l2: float, epochs: int, validation: bool):
    """One run's points and how it ended ("succeeded" or "failed" when it diverged)."""
    speed = min(0.6, 4.0 * lr) + 0.01
    floor = 0.04 + 0.25 * abs(math.log10(lr) + 1.7) / 2.5 + 2.0 * l2
    start = 0.69 + rng.normal(0, 0.02)
    last = epochs if rng.random() > 0.1 else int(rng.integers(epochs // 3, epochs))
    diverges = lr > 0.5 and rng.random() < 0.5
    points = []
    for epoch in range(1, last + 1):
        train = floor + (start - floor) * math.exp(-speed * epoch)
        train *= math.exp(rng.normal(0, 0.03))
        if diverges and epoch > last // 2:
            train *= 1.0 + 0.4 * (epoch - last // 2)
        point = {
            "epoch": epoch,
            "train_loss": train,
            "train_accuracy": max(0.0, min(1.0, 1.05 - train)),
            "learning_rate": lr,
            "seconds": 0.001,
        }
        if validation:
            val = train * (1.05 + 0.25 * epoch / epochs * (1 - l2 * 50)) + 0.01
            point["val_loss"] = val
            point["val_accuracy"] = max(0.0, min(1.0, 1.02 - val))
        points.append(point)
    return points, "failed" if diverges else "succeeded"


def seed_sweep(
    data_dir: Path,
    tenant: str,
    name: str,
    size: int,
    validation: bool,
    seed: int = 0,
    running: int = 0,
) -> Seeded:
    """A random sweep of ``size`` jobs over learning rate and L2 in the embedded system's
    database (``data_dir``), owned by ``tenant`` (its name): all finished but the first
    ``running``, which are halfway with the sweep's best losses (``finish_running``)."""
    settings = Settings.from_env({"DELTAFLOW_DATA_DIR": str(data_dir)})
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    base = {**BASE, "dataset": {**BASE["dataset"]}}
    if validation:
        base["dataset"]["validation_split"] = 0.25
    body = BatchSubmit(
        name=name,
        base=base,
        random={
            "training.optimizer.learning_rate": {"loguniform": [1e-4, 1.0]},
            "training.l2": {"uniform": [0.0, 0.01]},
        },
        samples=size,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    epochs = BASE["training"]["epochs"]
    # One small trained-looking model shared by the succeeded jobs: their pages (model
    # download, decision boundary) work as for real runs.
    net = Network.initialized(
        [2, 4, 2], ["tanh", "softmax"], "cross_entropy", "glorot", rng=rng, dtype="float64"
    )
    classes = generators.generate(base["dataset"]).classes
    weights = trained.weights_npz(net)
    held: tuple[bool, int | None] | None = None
    try:
        with factory() as session:
            tenant_id = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
            assert tenant_id is not None, f"no tenant {tenant}"
        # The system's dispatcher sends queued jobs to its worker: held for this tenant
        # (running quota 0) until the runs are written, or the worker runs a job the seeding
        # then writes too (UNIQUE trained_models.job_id, seen when the seeding's first write
        # waited on the worker's while it claimed, trained and finished a tiny job).
        held = _hold_dispatch(factory, tenant_id)
        with factory() as session:
            batch, job_ids, _ = batches.submit_batch(session, tenant_id, body, settings.limits)
            batch_id = batch.id
        with transaction(factory) as session:
            now = utcnow()
            rows = session.execute(select(Job.id, Job.params).where(Job.batch_id == batch_id)).all()
            left_running = [job_id for job_id, _ in rows[:running]]
            for job_id, params in rows:
                lr = params["training.optimizer.learning_rate"]
                l2 = params["training.l2"]
                points, status = _curve(rng, lr, l2, epochs, validation)
                if job_id in left_running:
                    _start(session, job_id, _best(epochs, validation)[: epochs // 2], now)
                    continue
                curve_store.insert_points(session, job_id, points)
                summaries.record(session, job_id, points)  # as a run's flush does
                error = (
                    {"type": "non_finite", "message": "the loss diverged", "epoch": len(points)}
                    if status == "failed"
                    else None
                )
                session.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(
                        status=status,
                        attempt=1,
                        epoch=len(points),
                        metrics=point_values(points[-1]),
                        error=error,
                        started_at=now - timedelta(seconds=5),
                        finished_at=now,
                        updated_at=now,
                        version=Job.version + 1,
                    )
                )
                if status == "succeeded":
                    meta = trained.model_meta(
                        net,
                        task="classification",
                        classes=None if classes is None else list(classes),
                        standardization=None,
                        stop_reason="epochs",
                        epochs_run=len(points),
                    )
                    session.add(
                        TrainedModel(job_id=job_id, weights=weights, meta=meta, created_at=now)
                    )
        return Seeded(batch_id, list(job_ids), epochs, left_running, data_dir, validation)
    finally:
        if held is not None:
            _release_dispatch(factory, tenant_id, held)
        engine.dispose()


def _hold_dispatch(factory, tenant_id: str) -> tuple[bool, int | None]:
    """Set the tenant's running quota to 0; returns what to restore."""
    with transaction(factory) as session:
        quota = session.get(TenantQuota, tenant_id)
        if quota is None:
            session.add(TenantQuota(tenant_id=tenant_id, max_running_jobs=0))
            return False, None
        previous = quota.max_running_jobs
        quota.max_running_jobs = 0
        return True, previous


def _release_dispatch(factory, tenant_id: str, held: tuple[bool, int | None]) -> None:
    existed, previous = held
    with transaction(factory) as session:
        quota = session.get(TenantQuota, tenant_id)
        if quota is None:
            return
        if existed:
            quota.max_running_jobs = previous
        else:
            session.delete(quota)


def _best(epochs: int, validation: bool) -> list[dict]:
    """A curve below every other of the sweep (a running job that is winning)."""
    points = []
    for epoch in range(1, epochs + 1):
        loss = 0.01 + 0.3 * math.exp(-0.2 * epoch)
        point = {"epoch": epoch, "train_loss": loss, "train_accuracy": 1 - loss, "seconds": 0.001}
        if validation:
            point["val_loss"] = loss * 1.05
            point["val_accuracy"] = 1 - loss
        points.append(point)
    return points


def _start(session, job_id: str, points: list[dict], now) -> None:
    curve_store.insert_points(session, job_id, points)
    summaries.record(session, job_id, points)
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status="running",
            attempt=1,
            epoch=len(points),
            metrics=point_values(points[-1]),
            started_at=now,
            updated_at=now,
            version=Job.version + 1,
        )
    )


def finish_running(seeded: Seeded) -> None:
    """The running jobs' second halves, and their end: succeeded (as a run's flush and
    finish would write them; their model is not stored)."""
    settings = Settings.from_env({"DELTAFLOW_DATA_DIR": str(seeded.data_dir)})
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            now = utcnow()
            points = _best(seeded.epochs, seeded.validation)
            for job_id in seeded.running:
                curve_store.insert_points(session, job_id, points[seeded.epochs // 2 :])
                summaries.record(session, job_id, points[seeded.epochs // 2 :])
                session.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(
                        status="succeeded",
                        epoch=len(points),
                        metrics=point_values(points[-1]),
                        finished_at=now,
                        updated_at=now,
                        version=Job.version + 1,
                    )
                )
    finally:
        engine.dispose()
