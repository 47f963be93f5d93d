"""Small response helpers shared by the blueprints: JSON bodies, ETags, Location."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from pydantic import BaseModel, Field


class ConditionalHeaders(BaseModel):
    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        max_length=1000,
        description="An ETag from an earlier answer: 304 if nothing changed.",
    )


def respond(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, etag: str | None = None
) -> Response:
    response = Response(
        json.dumps(data, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if etag is not None:
        response.set_etag(etag)
    return response


def not_modified(etag: str) -> Response | None:
    """A 304 when the request's If-None-Match names ``etag`` (or is ``*``), else None."""
    if request.if_none_match and request.if_none_match.contains_weak(etag):
        response = Response(status=304)
        response.set_etag(etag)
        return response
    return None


def no_content() -> Response:
    return Response(status=204)
