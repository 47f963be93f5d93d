"""``GET /api/v1/quota``: the tenant's quotas and what it uses (``service.quotas``)."""

from __future__ import annotations

from flask import Response

from service import quotas
from service.api.openapi import problems
from service.api.plumbing import api_blueprint, db, quota_defaults, respond, tenant_id
from service.schemas.responses.quota import QuotaOut

bp = api_blueprint("quota", __name__, "/quota", tag="quota")


@bp.get(
    "",
    summary="The tenant's quotas (queued jobs, running jobs, stored bytes) and its usage",
    responses={200: QuotaOut, **problems()},
)
def get_quota() -> Response:
    return respond(quotas.describe(db(), tenant_id(), quota_defaults()))
