"""A job on the wire: its progress, its metrics' summary, and a page of jobs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model
from sqlalchemy.orm import Session

from service import curves
from service.models import Job
from service.schemas import names
from service.schemas.names import JobStatus
from service.schemas.responses.wire import fields_of, finite
from service.summaries import summary_dict
from service.timeutil import iso


class Progress(BaseModel):
    epoch: int = Field(description="Last persisted epoch.")
    epochs: int = Field(description="Planned epochs.")
    fraction: float
    eta_seconds: float | None = Field(description="From the recent epochs' wall time.")


class MetricSummaryOut(BaseModel):
    min: float | None
    max: float | None
    last: float | None = Field(description="The value at the job's last stored epoch.")
    argmin_epoch: int | None = Field(description="The first epoch with the minimum.")
    argmax_epoch: int | None = Field(description="The first epoch with the maximum.")


# {metric: MetricSummaryOut} for every metric of names.METRICS.
SummaryOut = create_model(  # type: ignore[call-overload]
    "SummaryOut",
    __doc__="Each metric's summary, kept up to date as points are flushed.",
    **{metric: (MetricSummaryOut, ...) for metric in names.METRICS},
)


class JobOut(BaseModel):
    id: str
    name: str
    status: str = Field(
        description="queued | running | cancelling | succeeded | failed | cancelled"
    )
    spec: dict[str, Any] | None = Field(
        description="The spec as validated, defaults filled in (null in a list asked for "
        "with spec=false)."
    )
    progress: Progress
    metrics: dict[str, Any] | None = Field(description="The latest curve point.")
    error: dict[str, Any] | None = Field(description="{type, message, epoch} when failed.")
    gradient_check: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempt: int
    batch_id: str | None
    dataset_id: str | None
    params: dict[str, Any] | None = Field(description="The varied values within a batch.")
    origin: dict[str, Any] | None = Field(
        description="A batch job's origin: {kind: grid|random|jobs|tpe|pbt, ...}; a PBT "
        "exploit: {kind: pbt, parent, epoch, perturbed, generation, initial}."
    )
    cancel_requested: bool
    queue: str
    summary: SummaryOut = Field(  # type: ignore[valid-type]
        description="min, max, last, argmin_epoch, argmax_epoch of each metric (nulls before "
        "any point); filter and order jobs by them (docs/compare.md)."
    )


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


def job_dict(
    session: Session, job: Job, spec: dict[str, Any] | None = None, with_spec: bool = True
) -> dict[str, Any]:
    """A job on the wire; ``spec`` replaces the row's (a list's, without inline arrays);
    ``with_spec=False``: null (a light list)."""
    computed = {"spec": None} if not with_spec else {} if spec is None else {"spec": spec}
    return finite(
        fields_of(
            JobOut,
            job,
            **computed,
            progress=job_progress(session, job),
            created_at=iso(job.created_at),
            started_at=iso(job.started_at),
            finished_at=iso(job.finished_at),
            summary=summary_dict(job.summary_row),
        )
    )


def job_progress(session: Session, job: Job) -> dict[str, Any]:
    """{epoch, epochs, fraction, eta_seconds}; the ETA is the recent mean epoch time x remaining."""
    epochs = max(job.epochs, 1)
    done = job.status == JobStatus.succeeded
    fraction = 1.0 if done else min(job.epoch / epochs, 1.0)
    eta: float | None = None
    if job.status in (JobStatus.running, JobStatus.cancelling) and job.epoch > 0:
        mean = curves.mean_epoch_seconds(session, job.id)
        if mean is not None:
            eta = round(mean * max(job.epochs - job.epoch, 0), 3)
    elif job.status == JobStatus.succeeded:
        eta = 0.0
    return {"epoch": job.epoch, "epochs": job.epochs, "fraction": fraction, "eta_seconds": eta}
