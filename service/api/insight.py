"""Why training fails: ``GET /jobs/{id}/diagnostics`` (``service.diagnostics``) and
``POST /lr-finder`` (``service.lr_finder``)."""

from __future__ import annotations

from flask import Response
from pydantic import BaseModel, Field

from service import diagnostics, jobs, lr_finder
from service.api import plumbing
from service.api.openapi import conditional_get, over_a_limit, problems, register_models
from service.api.plumbing import ConditionalHeaders, api_blueprint, not_modified, respond
from service.schemas.insight import DiagnosticsOut, LrFinderOut, LrFinderRequest

job_bp = api_blueprint("diagnostics", __name__, "/jobs", tag="jobs")
register_models(job_bp, DiagnosticsOut)
lr_bp = api_blueprint("lr_finder", __name__, "/lr-finder", tag="insight")


class JobPath(BaseModel):
    job_id: str = Field(max_length=64)


@job_bp.get(
    "/<job_id>/diagnostics",
    summary="Why the job is (not) learning: findings from its curve",
    description="Findings read from the stored curve (gradient norms and activation "
    "statistics when recorded), the spec and the error: diverged, exploding or vanishing "
    "gradients, dead ReLUs, saturated units, a learning rate too high or too low, "
    "overfitting, underfitting. Most severe first; on a running job they are provisional. "
    "A long curve is read within the diagnostics_points limit (docs/diagnostics.md).",
    responses=conditional_get(DiagnosticsOut, "The findings", "Changes whenever the job does"),
)
def get_diagnostics(path: JobPath, header: ConditionalHeaders) -> Response:
    session = plumbing.db()
    job = jobs.get_job(session, plumbing.tenant_id(), path.job_id)
    tag = diagnostics.etag(job)
    cached = not_modified(tag)
    if cached is not None:
        return cached
    body = diagnostics.job_diagnostics(session, job, plumbing.settings().limits)
    return respond(body, etag=tag)


@lr_bp.post(
    "",
    summary="Learning-rate range test: train briefly while the rate grows",
    description="The body is a job spec, validated like POST /jobs, plus min_lr, max_lr and "
    "steps. The network is trained from its initial weights on the training split only "
    "(never the validation split), the rate growing exponentially from min_lr to max_lr "
    "over `steps` mini-batches; the smoothed loss per rate and a suggested rate (the rate "
    "at the smoothed loss's minimum / 10) come back. Small problems only.",
    responses={
        200: LrFinderOut,
        **problems(400),
        **over_a_limit("lr_finder_steps, lr_finder_values, lr_finder_work"),
    },
)
def post_lr_finder(body: LrFinderRequest) -> Response:
    session, limits = plumbing.db(), plumbing.settings().limits
    return respond(lr_finder.range_test(session, plumbing.tenant_id(), body, limits))
