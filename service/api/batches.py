"""``/batches``: submit a sweep, list batches, summarise one, stream its curves, cancel it.

Views parse, call one ``service.batches`` function and serialize. Jobs are sent to the
``batch`` Celery queue only after the batch and all its jobs are committed; a failed
send leaves them queued for the reaper.
"""

from __future__ import annotations

import hashlib
import json
import logging

from flask import Response
from pydantic import BaseModel, Field

from service import bands, batches, exports, summaries
from service.api import API_PREFIX
from service.api.openapi import (
    conditional_get,
    csv_response_doc,
    document_body,
    json_response,
    problems,
    register_models,
)
from service.api.plumbing import (
    MAX_EPOCH,
    ConditionalHeaders,
    CurveRangeQuery,
    PageQuery,
    RequestModel,
    api_blueprint,
    csv_response,
    db,
    dispatcher,
    idempotency_headers,
    not_modified,
    quota_defaults,
    respond,
    settings,
    tenant_id,
)
from service.curves import batch_curves
from service.schemas.batch import BatchRequest, BatchSubmit
from service.schemas.names import Metric, Mode, Reduce
from service.schemas.responses.batches import BatchList, BatchOut, BatchSummary, CancelOut
from service.schemas.responses.compare import BatchBand, ImportanceOut, NearestJob
from service.schemas.responses.curves import BatchCurves
from service.schemas.responses.wire import finite

log = logging.getLogger(__name__)
bp = api_blueprint("batches", __name__, "/batches", "Batches")


class BatchPath(BaseModel):
    batch_id: str = Field(max_length=64)


IdempotencyHeaders = idempotency_headers(
    "IdempotencyHeaders",
    "Repeat a request safely: the same key and body return the first batch.",
)


class SummaryQuery(RequestModel):
    metric: Metric | None = Field(
        default=None,
        description="Ranks the jobs for ``best``. Default: val_loss, or train_loss when no "
        "job has a validation loss (trained without a validation split).",
    )
    mode: Mode | None = Field(
        default=None, description="Default: min for losses, max for accuracies."
    )
    reduce: Reduce = Field(
        default="last",
        description="Which value of each job's curve ranks it: the last, or its min or max.",
    )


class CurvesQuery(CurveRangeQuery):
    cursor: str | None = Field(
        default=None, max_length=20_000, description="next_cursor of the previous answer."
    )
    max_points: int | None = Field(
        default=None,
        ge=2,
        le=MAX_EPOCH,
        description="A hard cap per job: each job's unseen range whole, M4-downsampled past "
        "it. Without it, the answer's points are shared by the jobs and may be truncated.",
    )


class BandQuery(RequestModel):
    metric: Metric | None = Field(default=None, description="Default: as the summary's.")
    mode: Mode | None = Field(
        default=None, description="Default: min for losses, max for accuracies."
    )
    k: int = Field(default=10, ge=0, le=50, description="How many best jobs to name.")
    points: int = Field(default=100, ge=2, le=1000, description="Epochs in the band at most.")


class NearestQuery(RequestModel):
    metric: Metric = Field(description="The curve the chart draws.")
    epoch: int = Field(ge=1)
    value: float = Field(allow_inf_nan=False)


register_models(
    bp,
    BatchOut,
    BatchList,
    BatchSummary,
    BatchCurves,
    CancelOut,
    BatchBand,
    NearestJob,
    ImportanceOut,
)


def _location(batch_id: str) -> str:
    return f"{API_PREFIX}/batches/{batch_id}"


@bp.post(
    "",
    summary="Submit a batch: a grid or random sweep over a base spec, or a list of jobs",
    responses={
        202: json_response(BatchOut, "Accepted; jobs queued", {"Location": "The batch URL"}),
        **problems(400, 413, 429),
    },
)
def submit(body: BatchSubmit, header: IdempotencyHeaders) -> Response:
    session = db()
    batch, job_ids, _ = batches.submit_batch(
        session,
        tenant_id(),
        body,
        settings().limits,
        header.idempotency_key,
        dispatcher=dispatcher(),
        quota=quota_defaults(),
    )
    return respond(
        batches.describe(session, batch, job_ids),
        status=202,
        headers={"Location": _location(batch.id)},
    )


document_body(bp, "", "post", {"application/json": BatchRequest})


@bp.get(
    "",
    summary="List batches, newest first",
    responses={200: BatchList, **problems()},
)
def list_batches(query: PageQuery) -> Response:
    items, next_cursor = batches.list_batches(
        db(), tenant_id(), query.limit, query.cursor, settings().limits.page_size
    )
    return respond({"items": items, "next_cursor": next_cursor})


@bp.get(
    "/<batch_id>",
    summary="A batch: counts by status, progress, best job by a metric, every job's params",
    responses=conditional_get(
        BatchSummary,
        "The batch",
        "Changes with the answer",
        unchanged="Not modified since the If-None-Match ETag",
    ),
)
def get_batch(path: BatchPath, query: SummaryQuery, header: ConditionalHeaders) -> Response:
    session = db()
    if query.metric is not None:  # a bad pair is 422 before anything is read
        summaries.check_metric(query.metric, query.mode)
    batch = batches.get_batch(session, tenant_id(), path.batch_id)
    summary = finite(batches.summarize(session, batch, query.metric, query.mode, query.reduce))
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    etag = f"batch-{batch.id}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"
    return not_modified(etag) or respond(summary, etag=etag)


@bp.get(
    "/<batch_id>/curves",
    summary="Every job's curve points added since the cursor, in one answer",
    responses={200: BatchCurves, **problems(404)},
)
def curves(path: BatchPath, query: CurvesQuery) -> Response:
    session = db()
    batch = batches.get_batch(session, tenant_id(), path.batch_id)
    ask = query.ask(max_points=query.max_points)
    result = batch_curves(session, batch, query.cursor, ask, settings().limits)
    return respond(finite(result))


@bp.get(
    "/<batch_id>/band",
    summary="A big sweep at a glance: quantiles of a metric per epoch across the jobs, "
    "and the k best jobs",
    responses=conditional_get(BatchBand, "The band and the best jobs", "Changes with any job"),
)
def band(path: BatchPath, query: BandQuery, header: ConditionalHeaders) -> Response:
    session = db()
    if query.metric is not None:
        summaries.check_metric(query.metric, query.mode)
    batch = batches.get_batch(session, tenant_id(), path.batch_id)
    etag = bands.band_etag(session, batch, query.metric, query.mode, query.k, query.points)
    cached = not_modified(etag)
    if cached is not None:
        return cached
    result = bands.band(session, batch, query.metric, query.mode, query.k, query.points)
    return respond(finite(result), etag=etag)


@bp.get(
    "/<batch_id>/nearest",
    summary="The job whose curve passes nearest a point (epoch, value) of the chart",
    responses={200: NearestJob, **problems(404)},
)
def nearest(path: BatchPath, query: NearestQuery) -> Response:
    session = db()
    batch = batches.get_batch(session, tenant_id(), path.batch_id)
    return respond(finite(bands.nearest(session, batch, query.metric, query.epoch, query.value)))


@bp.get(
    "/<batch_id>/importance",
    summary="Which varied parameter mattered for a metric (docs/compare.md: method and limits)",
    responses={200: ImportanceOut, **problems(404, 409)},
)
def importance(path: BatchPath, query: SummaryQuery) -> Response:
    session = db()
    batch = batches.get_batch(session, tenant_id(), path.batch_id)
    return respond(batches.importance(session, batch, query.metric, query.mode, query.reduce))


@bp.get(
    "/<batch_id>/results.csv",
    summary="One row per job: varied parameters and every metric's summary",
    responses={200: csv_response_doc("One row per job, header first"), **problems(404)},
)
def results_csv(path: BatchPath) -> Response:
    session = db()
    batch = batches.get_batch(session, tenant_id(), path.batch_id)
    text = exports.results_csv(batch, batches.batch_jobs(session, batch.id))
    return csv_response(text, f"batch-{batch.id}-results.csv")


@bp.post(
    "/<batch_id>/cancel",
    summary="Cancel every unfinished job (queued at once, running within an epoch)",
    responses={202: CancelOut, **problems(404)},
)
def cancel(path: BatchPath) -> Response:
    result = batches.cancel_batch(db(), tenant_id(), path.batch_id)
    return respond(result, status=202)
