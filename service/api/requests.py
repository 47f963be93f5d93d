"""Request checks shared by every API blueprint: a JSON body must parse (else 400)."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest

from service.problems import BadRequest


def require_wellformed_json() -> None:
    """A ``before_request`` hook: a JSON body that does not parse is a 400, not a 422.

    flask-openapi3 parses bodies with ``silent=True`` (turning garbage into ``None``), so
    malformed JSON is caught here first. Reading the body also enforces the size limit (413).
    """
    if not request.is_json or request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return
    if not request.get_data(cache=True):
        return  # a missing body is a validation error (422), reported by the view
    try:
        request.get_json(cache=True)  # cached: the view's validation reuses the parse
    except WerkzeugBadRequest:
        raise BadRequest("the request body is not valid JSON") from None
