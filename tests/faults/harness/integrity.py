"""What "nothing lost" means, checked against the database after a scenario.

For every job: its final status, its attempt count, and its curve — every epoch from 1 to
the last exactly once, with the values of an uninterrupted run — and its trained weights,
bit for bit equal to the uninterrupted run's.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.models import CurvePoint, Job, TrainedModel
from service.schemas.names import FINISHED, JobStatus


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run: per-epoch train loss and the final weights."""

    train_loss: dict[int, float]
    weights: dict[str, np.ndarray]  # W0, b0, W1, b1, ... as stored in trained_models


@dataclass
class JobAudit:
    id: str
    name: str
    status: str
    attempt: int
    epochs: int  # planned
    epoch: int  # last persisted
    error: dict | None
    curve_epochs: list[int]
    duplicated_epochs: int
    missing_epochs: list[int] = field(default_factory=list)
    wrong_points: list[int] = field(default_factory=list)  # epochs differing from the reference
    weights_equal: bool | None = None  # None: no model expected or no reference

    def __repr__(self) -> str:
        return (
            f"JobAudit({self.name} {self.status} attempt={self.attempt} "
            f"epoch={self.epoch}/{self.epochs} points={len(self.curve_epochs)} "
            f"missing={len(self.missing_epochs)} dup={self.duplicated_epochs} "
            f"wrong={len(self.wrong_points)} weights_equal={self.weights_equal} error={self.error})"
        )


def audit_jobs(
    factory: sessionmaker[Session],
    references: dict[str, Reference] | None = None,
) -> list[JobAudit]:
    """Audit every job in the database. ``references`` maps job name → uninterrupted run."""
    references = references or {}
    audits = []
    with factory() as session:
        duplicates = _duplicate_counts(session)
        for job in session.scalars(select(Job).order_by(Job.created_at, Job.id)):
            points = session.execute(
                select(CurvePoint.epoch, CurvePoint.train_loss)
                .where(CurvePoint.job_id == job.id)
                .order_by(CurvePoint.epoch)
            ).all()
            audit = JobAudit(
                id=job.id,
                name=job.name,
                status=job.status,
                attempt=job.attempt,
                epochs=job.epochs,
                epoch=job.epoch,
                error=job.error,
                curve_epochs=[p.epoch for p in points],
                duplicated_epochs=duplicates.get(job.id, 0),
            )
            reference = references.get(job.name)
            last = _expected_last(job, audit, reference)
            audit.missing_epochs = _missing(audit.curve_epochs, last)
            if reference is not None:
                audit.wrong_points = [
                    p.epoch
                    for p in points
                    if reference.train_loss.get(p.epoch) != p.train_loss  # bit-for-bit
                ]
                if job.status == JobStatus.succeeded:
                    model = session.get(TrainedModel, job.id)
                    audit.weights_equal = model is not None and weights_equal(
                        load_weights(model.weights), reference.weights
                    )
            audits.append(audit)
    return audits


def _duplicate_counts(session: Session) -> dict[str, int]:
    """Epochs stored more than once per job (the primary key should make this always empty)."""
    rows = session.execute(
        select(CurvePoint.job_id, CurvePoint.epoch, func.count())
        .group_by(CurvePoint.job_id, CurvePoint.epoch)
        .having(func.count() > 1)
    ).all()
    counts: Counter[str] = Counter()
    for job_id, _epoch, n in rows:
        counts[job_id] += n - 1
    return dict(counts)


def _expected_last(job: Job, audit: JobAudit, reference: Reference | None) -> int:
    """The last epoch a job's curve must reach, every epoch before it included.

    A succeeded job must end where its uninterrupted run ended (early stopping included);
    without a reference, at its planned epochs (or where it says early stopping ended it).
    Other jobs: every epoch up to the last one stored.
    """
    if job.status == JobStatus.succeeded:
        if reference is not None:
            return max(reference.train_loss, default=0)
        return job.epoch if job.epoch < job.epochs else job.epochs
    return max(audit.curve_epochs, default=0)


def _missing(epochs: Sequence[int], last: int) -> list[int]:
    present = set(epochs)
    return [e for e in range(1, last + 1) if e not in present]


def load_weights(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def weights_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Bit-for-bit: same names, dtypes, shapes and bytes."""
    if a.keys() != b.keys():
        return False
    return all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes()
        for k in a
    )


@dataclass
class Tally:
    """One row of the reliability table."""

    scenario: str
    backend: str
    submitted: int = 0
    succeeded: int = 0
    cancelled: int = 0
    failed: int = 0
    lost: int = 0  # not in a final state, or missing from the database
    duplicated_epochs: int = 0
    missing_epochs: int = 0
    wrong_points: int = 0
    weight_mismatches: int = 0
    max_attempt: int = 0

    @classmethod
    def from_audits(
        cls, scenario: str, backend: str, submitted_ids: Sequence[str], audits: list[JobAudit]
    ) -> Tally:
        by_id = {a.id: a for a in audits}
        tally = cls(scenario=scenario, backend=backend, submitted=len(set(submitted_ids)))
        for job_id in set(submitted_ids):
            audit = by_id.get(job_id)
            if audit is None or audit.status not in FINISHED:
                tally.lost += 1
                continue
            tally.succeeded += audit.status == JobStatus.succeeded
            tally.cancelled += audit.status == JobStatus.cancelled
            tally.failed += audit.status == JobStatus.failed
            tally.duplicated_epochs += audit.duplicated_epochs
            tally.missing_epochs += len(audit.missing_epochs)
            tally.wrong_points += len(audit.wrong_points)
            tally.weight_mismatches += audit.weights_equal is False
            tally.max_attempt = max(tally.max_attempt, audit.attempt)
        return tally
