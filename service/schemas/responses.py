"""Every response: its model (documented in OpenAPI) and the function that fills it.

One place answers "what does a job (a dataset, a batch, a curve, a model) look like on the
wire". Views call a domain function and dump its result with a function from here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, Field, create_model
from sqlalchemy.orm import Session

from service import curves, generators
from service.importance import METHOD, Importance
from service.models import Batch, Dataset, Job, TrialDecision
from service.schemas import names
from service.schemas.names import JobStatus
from service.schemas.records import CurvePointOut
from service.summaries import Best as Ranked
from service.summaries import count_statuses, reduced, summary_dict
from service.timeutil import iso

if TYPE_CHECKING:  # the engine is not imported to describe a model
    from service.trained import Prediction, Trained


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: turn them into null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def fields_of(model: type[BaseModel], row: Any, **computed: Any) -> dict[str, Any]:
    """The response model's fields, in its order: ``computed`` ones as given, the rest read
    from ``row`` by name (so a field is declared once, on the model)."""
    return {
        name: computed[name] if name in computed else getattr(row, name)
        for name in model.model_fields
    }


# --- datasets ------------------------------------------------------------------------


class DatasetOut(BaseModel):
    id: str
    name: str
    task: str = Field(description="classification | regression")
    n_samples: int
    n_features: int
    n_outputs: int
    classes: list[int | str | float] | None = Field(description="Original labels, index order.")
    sha256: str = Field(description="Content address of the stored arrays (NPZ).")
    size_bytes: int
    created_at: str


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None


def dataset_dict(dataset: Dataset) -> dict[str, Any]:
    return fields_of(DatasetOut, dataset, created_at=iso(dataset.created_at))


# --- jobs ----------------------------------------------------------------------------


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


CURVE_COLUMNS = Field(
    default=None,
    description="With format=columns instead of points: {epoch: [...], <field>: [...]}.",
)


class CurveOut(BaseModel):
    job_id: str
    status: str
    points: list[CurvePointOut] | None = Field(
        default=None, description="In epoch order (absent with format=columns)."
    )
    columns: dict[str, list[Any]] | None = CURVE_COLUMNS
    next_since: int = Field(description="Pass as ?since= to get only newer points.")
    complete: bool = Field(description="The job is finished and no points remain after next_since.")


class WbLayerOut(BaseModel):
    W: list[list[float]] = Field(description="Shape (n_in, n_out).")
    b: list[float] = Field(description="Shape (n_out,).")


class Standardization(BaseModel):
    mean: list[float]
    std: list[float]


class ModelOut(BaseModel):
    job_id: str
    layer_sizes: list[int]
    activations: list[str]
    loss: str
    dtype: str
    task: str
    classes: list[int | str | float] | None
    standardization: Standardization | None
    wb: list[WbLayerOut]
    theta: list[list[list[float]]] = Field(
        description="Ng's layout per layer: shape (n_out, n_in + 1), bias in column 0."
    )
    stop_reason: str | None
    epochs_run: int | None


def model_dict(trained: Trained) -> dict[str, Any]:
    meta, net = trained.meta, trained.net
    return {
        "job_id": trained.job.id,
        "layer_sizes": net.layer_sizes,
        "activations": net.activations,
        "loss": net.loss,
        "dtype": str(net.dtype),
        "task": meta.get("task"),
        "classes": meta.get("classes"),
        "standardization": meta.get("standardization"),
        "wb": [
            {"W": W.tolist(), "b": b.tolist()} for W, b in zip(net.weights, net.biases, strict=True)
        ],
        "theta": [theta.tolist() for theta in net.theta()],
        "stop_reason": meta.get("stop_reason"),
        "epochs_run": meta.get("epochs_run"),
    }


class PredictOut(BaseModel):
    predictions: list[Any] = Field(
        description="Class labels (classification) or targets: a value or a row per example."
    )
    probabilities: list[list[float]] | None = Field(
        default=None, description="Per-class output of a softmax or sigmoid classifier."
    )


def prediction_dict(result: Prediction) -> dict[str, Any]:
    """``probabilities`` only for a softmax or sigmoid classifier."""
    out: dict[str, Any] = {"predictions": result.predictions}
    if result.probabilities is not None:
        out["probabilities"] = result.probabilities
    return out


# --- batches ---------------------------------------------------------------------------


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


class JobCurve(BaseModel):
    id: str
    status: str
    points: list[CurvePointOut] | None = Field(
        default=None, description="Only epochs after the cursor, in order."
    )
    columns: dict[str, list[Any]] | None = CURVE_COLUMNS


class BatchCurves(BaseModel):
    jobs: list[JobCurve] = Field(description="Every job of the batch, in batch order.")
    next_cursor: str = Field(description="Opaque: one last-seen epoch per job.")
    truncated: bool = Field(description="More points are already stored: ask again at once.")
    complete: bool = Field(description="Every job ended and every point was returned.")


class RankedJob(BaseModel):
    id: str
    index: int | None
    name: str
    status: str
    params: dict[str, Any] = Field(description="This job's values of the varied paths.")
    value: float | None = Field(description="Its value of the metric (latest, or at the epoch).")


class BandSeries(BaseModel):
    epoch: list[int] = Field(description="At most `points` epochs, evenly spaced, both ends kept.")
    count: list[int] = Field(description="How many jobs have a value at that epoch.")
    p10: list[float | None]
    p25: list[float | None]
    p50: list[float | None] = Field(description="The median across the jobs.")
    p75: list[float | None]
    p90: list[float | None]


class BatchBand(BaseModel):
    metric: str
    mode: str
    metric_defaulted: bool = Field(description="No metric was asked for (as in the summary).")
    jobs: int = Field(description="Jobs in the batch.")
    ranked: int = Field(description="Jobs with a value of the metric.")
    quantiles: list[float]
    band: BandSeries = Field(description="Quantiles of the metric across the jobs, per epoch.")
    top: list[RankedJob] = Field(
        description="The k best by the latest value, best first (any status), and the best "
        "succeeded job if it is not among them."
    )
    best: Best | None = Field(description="The succeeded job with the best final metric.")


class NearestJob(BaseModel):
    metric: str
    epoch: int
    value: float
    job: RankedJob | None = Field(
        description="The job whose value at the epoch is nearest (log scale for losses)."
    )


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


class ParamImportanceOut(BaseModel):
    name: str = Field(description="A varied parameter's dotted path.")
    importance: float = Field(description="Its share of what the parameters explain (sums to 1).")
    omega_squared: float = Field(
        description="The share of the metric's rank variance it explains on its own (ω², ≥ 0)."
    )
    groups: int = Field(description="Distinct values, or quantile bins, the trials fell into.")


class ImportanceOut(BaseModel):
    metric: str
    mode: str
    reduce: str
    method: str = Field(description="binned-omega-squared (docs/compare.md)")
    n_trials: int = Field(description="Finished jobs with a value of the metric.")
    explained: float = Field(description="Σ ω² (≤ 1): how much first-order effects explain.")
    params: list[ParamImportanceOut] = Field(description="Most important first.")
    warnings: list[str] = Field(description="When the answer is thin or says nothing.")


def importance_dict(metric: str, mode: str, reduce: str, found: Importance) -> dict[str, Any]:
    return {
        "metric": metric,
        "mode": mode,
        "reduce": reduce,
        "method": METHOD,
        "n_trials": found.n_trials,
        "explained": found.explained,
        "params": [dataclasses.asdict(p) for p in found.params],
        "warnings": found.warnings,
    }


def cancelled_batch(batch: Batch, jobs: Sequence[Job], cancelled: list[str]) -> dict[str, Any]:
    described = batch_dict(batch, [job.id for job in jobs], count_statuses(jobs))
    return {**described, "cancelled": cancelled}


# --- names ---------------------------------------------------------------------------


class GeneratorName(BaseModel):
    name: str
    task: str = Field(description="classification | regression")


class MetaOut(BaseModel):
    """The names the API accepts (``schemas.names``), for clients and the dashboard."""

    statuses: list[str]
    queues: list[str]
    metrics: list[str]
    tasks: list[str]
    generators: list[GeneratorName]
    hidden_activations: list[str]
    output_activations: list[str]
    losses: list[str]
    init_schemes: list[str]
    optimizers: list[str]
    schedules: list[str]
    schedulers: list[str]
    batch_kinds: list[str]
    distributions: list[str]


def meta_dict() -> dict[str, Any]:
    return {
        "statuses": [status.value for status in names.JobStatus],
        "queues": [queue.value for queue in names.Queue],
        "metrics": list(names.METRICS),
        "tasks": list(names.TASKS),
        "generators": [
            {"name": name, "task": generators.describe({"generator": name})[0]}
            for name in names.GENERATORS
        ],
        "hidden_activations": list(get_args(names.HiddenActivation)),
        "output_activations": list(get_args(names.OutputActivation)),
        "losses": list(get_args(names.LossName)),
        "init_schemes": list(get_args(names.InitSchemeName)),
        "optimizers": list(get_args(names.OptimizerName)),
        "schedules": list(names.SCHEDULES),
        "schedulers": list(get_args(names.SchedulerName)),
        "batch_kinds": list(names.BATCH_KINDS),
        "distributions": list(names.DISTRIBUTIONS),
    }


# --- health ----------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# --- quota (service.quotas) ----------------------------------------------------------------


class QuotaLimitsOut(BaseModel):
    """The tenant's limits in force (its own from ``deltaflow set-quota``, else the
    ``DELTAFLOW_QUOTA_*`` defaults); null = unlimited."""

    max_queued_jobs: int | None
    max_running_jobs: int | None
    max_storage_bytes: int | None


class QuotaUsageOut(BaseModel):
    queued_jobs: int
    running_jobs: int = Field(description="Running or cancelling.")
    storage_bytes: int = Field(description="Bytes of the tenant's stored datasets.")


class QuotaOut(BaseModel):
    limits: QuotaLimitsOut
    usage: QuotaUsageOut
