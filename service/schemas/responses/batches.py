"""A batch on the wire: as created, in a list, its summary (jobs ranked, scheduler,
lineage) and what a cancel answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from service.models import Batch, Job, TrialDecision
from service.schemas.responses.jobs import SummaryOut
from service.schemas.responses.wire import fields_of
from service.summaries import Best as Ranked
from service.summaries import count_statuses, reduced, summary_dict
from service.timeutil import iso


class Counts(BaseModel):
    queued: int
    running: int
    cancelling: int
    succeeded: int
    failed: int
    cancelled: int


class BatchProgress(BaseModel):
    finished: int = Field(description="Jobs that ended (succeeded, failed or cancelled).")
    total: int
    fraction: float = Field(description="Mean of the jobs' epoch fractions; ended jobs count 1.")


class BatchOut(BaseModel):
    id: str
    name: str
    kind: str = Field(description="grid | random | jobs | tpe")
    size: int
    varied: list[str] = Field(description="The dotted paths whose values differ between jobs.")
    created_at: str
    job_ids: list[str] = Field(description="In batch order.")
    counts: Counts


class BatchListItem(BaseModel):
    id: str
    name: str
    kind: str
    size: int
    varied: list[str]
    created_at: str
    counts: Counts
    progress: BatchProgress


class BatchList(BaseModel):
    items: list[BatchListItem]
    next_cursor: str | None


class BatchJobOut(BaseModel):
    id: str
    index: int
    name: str
    status: str
    params: dict[str, Any] = Field(description="This job's values of the varied paths.")
    epoch: int
    epochs: int
    metrics: dict[str, Any] | None = Field(description="The latest (final once ended) point.")
    error: dict[str, Any] | None
    origin: dict[str, Any] | None = Field(description="{kind: grid|random|jobs|tpe|pbt, ...}")
    stopped_by_scheduler: dict[str, Any] | None = Field(
        description="Where the scheduler stopped it: {epoch, value, rank, of} (asha, "
        "hyperband with its bracket) or {epoch, value, median, of} (median)."
    )
    value: float | None = Field(description="The metric's value that ranks it (by reduce).")
    summary: SummaryOut  # type: ignore[valid-type]


class Exploit(BaseModel):
    job_id: str = Field(description="The trial that exploited.")
    epoch: int = Field(description="Its report epoch.")
    parent: str = Field(description="The trial whose checkpoint it copied.")
    parent_epoch: int = Field(description="The copied checkpoint's epoch: it goes on from there.")
    perturbed: dict[str, Any] = Field(description="The explored values, {path: value}.")


class Best(BaseModel):
    id: str
    value: float


class BatchSummary(BatchOut):
    scheduler: dict[str, Any] | None = Field(description="The batch's scheduler, if any.")
    search: dict[str, Any] | None = Field(
        description="A TPE search as stored, with growing: whether trials are still to come."
    )
    lineage: list[Exploit] = Field(description="PBT's exploits, in the order they happened.")
    progress: BatchProgress
    metric: str = Field(description="What ranks the jobs (the one asked for, or the default).")
    metric_defaulted: bool = Field(
        default=False,
        description="No metric was asked for: val_loss, or train_loss when no job has a "
        "validation loss.",
    )
    mode: str
    reduce: str = Field(description="last | min | max: which value of each curve ranks it.")
    best: Best | None = Field(description="The succeeded job with the best value (by reduce).")
    jobs: list[BatchJobOut]


class CancelOut(BatchOut):
    cancelled: list[str] = Field(description="Jobs this request cancelled (or found cancelling).")


def batch_dict(batch: Batch, job_ids: Sequence[str], counts: dict[str, int]) -> dict[str, Any]:
    """The fields every batch representation shares."""
    return {
        "id": batch.id,
        "name": batch.name,
        "kind": batch.spec.get("kind"),
        "size": len(job_ids),
        "varied": list(batch.varied),
        "created_at": iso(batch.created_at),
        "job_ids": list(job_ids),
        "counts": counts,
    }


def batch_list_item(batch: Batch, counts: dict[str, int], progress: dict[str, Any]) -> dict:
    """A batch in a list: counts and progress, without job ids (the batch itself has them)."""
    item = batch_dict(batch, [], counts)
    del item["job_ids"]
    item["size"] = sum(counts.values())
    return {**item, "progress": progress}


def batch_summary(
    batch: Batch,
    jobs: Sequence[Job],
    progress: dict[str, Any],
    metric: str,
    mode: str,
    best: Ranked | None,
    decisions: Sequence[TrialDecision] = (),
    reduce: str = "last",
) -> dict[str, Any]:
    stopped = {d.job_id: d.detail for d in decisions if d.action == "stop"}
    search = batch.spec.get("search")
    return {
        **batch_dict(batch, [job.id for job in jobs], count_statuses(jobs)),
        "scheduler": batch.spec.get("scheduler"),
        "search": None if search is None else {**search, "growing": batch.growing},
        "lineage": [
            {
                "job_id": d.job_id,
                "epoch": d.epoch,
                "parent": d.detail["parent"],
                "parent_epoch": d.detail["parent_epoch"],
                "perturbed": d.detail["perturbed"],
            }
            for d in decisions
            if d.action == "exploit"
        ],  # fmt: skip
        "progress": progress,
        "metric": metric,
        "mode": mode,
        "reduce": reduce,
        "best": None if best is None else {"id": best.id, "value": best.value},
        "jobs": [
            fields_of(
                BatchJobOut,
                job,
                index=job.batch_index,
                params=job.params or {},
                stopped_by_scheduler=stopped.get(job.id),
                value=reduced(job, metric, reduce),
                summary=summary_dict(job.summary_row),
            )
            for job in jobs
        ],
    }


def cancelled_batch(batch: Batch, jobs: Sequence[Job], cancelled: list[str]) -> dict[str, Any]:
    described = batch_dict(batch, [job.id for job in jobs], count_statuses(jobs))
    return {**described, "cancelled": cancelled}
