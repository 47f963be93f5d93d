"""``GET /api/v1/meta``: the names the API accepts, so clients (the dashboard) need no copy."""

from __future__ import annotations

from flask import Response

from service.api.openapi import problems
from service.api.plumbing import api_blueprint, respond
from service.schemas.responses.meta import MetaOut, meta_dict

bp = api_blueprint("meta", __name__, "/meta", tag="meta")


@bp.get(
    "",
    summary="The names the API accepts: statuses, generators, activations, losses, optimizers, …",
    responses={200: MetaOut, **problems()},
)
def get_meta() -> Response:
    return respond(meta_dict())
