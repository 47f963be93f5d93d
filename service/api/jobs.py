"""``/api/v1/jobs``: submit, list, read, curve, cancel, delete, model, predict."""

from __future__ import annotations

from flask import Response, g, request, stream_with_context, url_for
from pydantic import BaseModel, Field

from service import curves, exports, jobs, trained
from service.api import plumbing
from service.api.openapi import (
    conditional_get,
    csv_response_doc,
    json_response,
    problems,
    register_models,
)
from service.api.plumbing import (
    MAX_EPOCH,
    ConditionalHeaders,
    CurveRangeQuery,
    PageQuery,
    api_blueprint,
    csv_response,
    idempotency_headers,
    no_content,
    not_modified,
    respond,
)
from service.models import Job
from service.schemas.names import StatusName
from service.schemas.responses.curves import CurveOut
from service.schemas.responses.jobs import JobList, JobOut, job_dict
from service.schemas.responses.trained import ModelOut, PredictOut, model_dict, prediction_dict
from service.schemas.spec import JobSubmit, Matrix

bp = api_blueprint("jobs", __name__, "/jobs", tag="jobs")
register_models(bp, JobOut, CurveOut)


@bp.before_request
def answer_an_unchanged_poll() -> Response | None:
    """A job poll whose ETag still holds is answered here, after authentication and before
    the view parses its arguments: its 304 needs only the job's head (one read). That
    parsing (the path and header models) was about a fifth of a 304's time."""
    if request.endpoint != "jobs.get_job" or request.method != "GET":
        return None
    job_id = (request.view_args or {}).get("job_id", "")
    if not request.if_none_match or len(job_id) > JOB_ID_MAX:
        return None  # the view answers (or refuses) it
    head = jobs.job_head(plumbing.reads(), plumbing.tenant_id(), job_id)
    g.job_head = head
    return not_modified(jobs.etag(head))


JOB_ID_MAX = 64


class JobPath(BaseModel):
    job_id: str = Field(max_length=JOB_ID_MAX)


SubmitHeaders = idempotency_headers(
    "SubmitHeaders", "Repeat a submit safely: the same key and body return the same job."
)


class JobListQuery(PageQuery):
    status: StatusName | None = None
    batch_id: str | None = Field(default=None, max_length=64)
    filter: str | None = Field(
        default=None,
        max_length=2000,
        description="`and`-joined comparisons, e.g. `summary.val_loss.min < 0.2 and "
        "spec.training.optimizer.name = 'adam'` (docs/compare.md).",
    )
    order_by: str | None = Field(
        default=None,
        max_length=300,
        description="A key of the filter grammar and `asc` (default) or `desc`; NULLs last, "
        "ties by id. Default: newest first.",
    )
    cursor: str | None = Field(default=None, max_length=2000, description="From the last page.")
    spec: bool = Field(
        default=True,
        description="Include each job's spec (inline arrays dropped); false for a light list, "
        "e.g. one that polls.",
    )


class CurveQuery(CurveRangeQuery):
    since: int = Field(
        default=0, ge=0, le=MAX_EPOCH, description="Return only epochs after this one."
    )
    max_points: int | None = Field(
        default=None,
        ge=2,
        le=MAX_EPOCH,
        description="A hard cap: the whole range in one answer, M4-downsampled past it "
        "(each bucket's first, last, and every requested field's min and max kept).",
    )


class PredictIn(BaseModel):
    X: Matrix = Field(min_length=1, description="Shape (n_samples, n_features).")


def _job_response(job: Job, status: int = 200, location: bool = False) -> Response:
    headers = {"Location": url_for("jobs.get_job", job_id=job.id)} if location else None
    return respond(job_dict(plumbing.db(), job), status, headers=headers, etag=jobs.etag(job))


@bp.post(
    "",
    summary="Submit a training job",
    responses={
        202: json_response(
            JobOut, "Accepted and queued", {"Location": "The job's URL", "ETag": ""}
        ),
        **problems(400, 409, 413, 429),
    },
)
def submit_job(body: JobSubmit, header: SubmitHeaders) -> Response:
    session, settings = plumbing.db(), plumbing.settings()
    job, _ = jobs.submit_job(
        session,
        plumbing.tenant_id(),
        body.spec(),
        body.name,
        settings.limits,
        idempotency_key=header.idempotency_key,
        dispatcher=plumbing.dispatcher(),
        quota=plumbing.quota_defaults(),
    )
    return _job_response(job, 202, location=True)


@bp.get(
    "",
    summary="List jobs, newest first",
    responses={
        200: json_response(JobList, "A page of jobs", {"ETag": "Changes with any job on it"}),
        304: {"description": "Not modified since the If-None-Match ETag"},
        **problems(),
    },
)
def list_jobs(query: JobListQuery, header: ConditionalHeaders) -> Response:
    session = plumbing.db()
    items, next_cursor = jobs.list_jobs(
        session,
        plumbing.tenant_id(),
        query.status,
        query.batch_id,
        query.limit,
        query.cursor,
        plumbing.settings().limits.page_size,
        query.filter,
        query.order_by,
    )
    # A poll of an unchanged page: 304 from the rows' versions, nothing serialized.
    tag = jobs.page_etag(items, next_cursor, query.model_dump_json())
    cached = not_modified(tag)
    if cached is not None:
        return cached
    if not query.spec:
        listed = [job_dict(session, j, with_spec=False) for j in items]
    else:
        specs = jobs.list_specs(session, [j.id for j in items])
        listed = [job_dict(session, j, specs[j.id]) for j in items]
    return respond({"items": listed, "next_cursor": next_cursor}, etag=tag)


@bp.get(
    "/<job_id>",
    summary="Read a job: status, progress, latest metrics",
    responses=conditional_get(JobOut, "The job", "Changes whenever the job does"),
)
def get_job(path: JobPath, header: ConditionalHeaders) -> Response:
    if header.if_none_match and "job_head" not in g:  # (answer_an_unchanged_poll read it)
        head = jobs.job_head(plumbing.reads(), plumbing.tenant_id(), path.job_id)
        cached = not_modified(jobs.etag(head))
        if cached is not None:
            return cached
    job = jobs.get_job(plumbing.db(), plumbing.tenant_id(), path.job_id)
    return not_modified(jobs.etag(job)) or _job_response(job)


@bp.get(
    "/<job_id>/curve",
    summary="The loss curve after epoch `since`",
    responses=conditional_get(CurveOut, "Curve points"),
)
def get_curve(path: JobPath, query: CurveQuery, header: ConditionalHeaders) -> Response:
    # The fast path of a poll: the job's head in one read answers a 304, or an empty page
    # when nothing was stored after `since`; only then are points read.
    head = jobs.job_head(plumbing.reads(), plumbing.tenant_id(), path.job_id)
    ask = query.ask(query.since, query.max_points)
    tag = f"{jobs.etag(head, 'curve')}-{ask.tag()}"
    cached = not_modified(tag)
    if cached is not None:
        return cached
    empty = curves.curve_without_points(head.id, head.status, head.epoch, ask)
    if empty is not None:
        return respond(empty, etag=tag)
    limits = plumbing.settings().limits
    # Autocommit reads (each statement sees its own snapshot, as under READ COMMITTED in a
    # transaction): no BEGIN and ROLLBACK round trips around the two reads.
    with plumbing.reads().connect() as connection:
        data = curves.job_curve(connection, head.id, head.status, head.epoch, ask, limits)
    return respond(data, etag=tag)


@bp.get(
    "/<job_id>/curve.csv",
    summary="The whole curve as CSV: epoch and every numeric field, one row per epoch",
    responses={200: csv_response_doc("The curve, header first"), **problems(404)},
)
def get_curve_csv(path: JobPath) -> Response:
    session = plumbing.db()
    job = jobs.get_job(session, plumbing.tenant_id(), path.job_id)
    return csv_response(
        stream_with_context(exports.curve_csv(session, job.id)), f"job-{job.id}-curve.csv"
    )


@bp.post(
    "/<job_id>/cancel",
    summary="Request cancellation (effective within one epoch)",
    responses={202: JobOut, **problems(404, 409)},
)
def cancel_job(path: JobPath) -> Response:
    job = jobs.cancel_job(plumbing.db(), plumbing.tenant_id(), path.job_id)
    return _job_response(job, 202)


@bp.delete(
    "/<job_id>",
    summary="Delete a finished job with its curve and model",
    responses={204: None, **problems(404, 409)},
)
def delete_job(path: JobPath) -> Response:
    jobs.delete_job(plumbing.db(), plumbing.tenant_id(), path.job_id)
    return no_content()


@bp.get(
    "/<job_id>/model",
    summary="The trained weights in both layouts, classes and standardization",
    responses={200: ModelOut, **problems(404, 409)},
)
def get_model(path: JobPath) -> Response:
    return respond(model_dict(trained.get(plumbing.db(), plumbing.tenant_id(), path.job_id)))


@bp.post(
    "/<job_id>/predict",
    summary="Predict with the trained model",
    responses={200: PredictOut, **problems(400, 404, 409, 413)},
)
def predict_job(path: JobPath, body: PredictIn) -> Response:
    model = trained.get(plumbing.db(), plumbing.tenant_id(), path.job_id)
    limits = plumbing.settings().limits
    return respond(prediction_dict(trained.predict(model, body.X, limits)))
