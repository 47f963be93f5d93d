"""One place where every error becomes ``application/problem+json``.

Domain ``Problem``s, werkzeug's HTTP errors (404 route, 405, 413 …), pydantic validation
errors from flask-openapi3, an unreachable database (503 + Retry-After) and anything
unexpected (500, logged) all leave through ``problem_response``.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, current_app, g, request
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from service.api.plumbing import EXTENSION
from service.deadlines import DeadlineExceeded, is_statement_timeout
from service.problems import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    Invalid,
    Problem,
    Unavailable,
    from_validation_error,
)

log = logging.getLogger(__name__)

DB_RETRY_AFTER_SECONDS = "5"


def problem_response(problem: Problem) -> Response:
    response = Response(
        json.dumps(problem.to_dict()), status=problem.status, mimetype=PROBLEM_MEDIA_TYPE
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def _http_problem(error: HTTPException) -> Problem:
    problem = Problem(error.description or error.name)
    problem.status = error.code or 500
    problem.title = error.name
    problem.slug = error.name.lower().replace(" ", "-")
    if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
        problem.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return problem


def _location_of(error: ValidationError) -> str:
    """Which part of the request a flask-openapi3 model validated, from its class name.

    Convention: request models are named ``…Query``, ``…Path`` or ``…Headers``;
    anything else is the body.
    """
    title = error.title
    for suffix, where in (("Query", "query"), ("Path", "path"), ("Headers", "header")):
        if title.endswith(suffix):
            return where
    return "body"


def validation_error_response(error: ValidationError) -> Response:
    """flask-openapi3's ``validation_error_callback``: a 422 problem with field locations."""
    return problem_response(from_validation_error(error, prefix=(_location_of(error),)))


def _rollback() -> None:
    session = g.get("db")
    if session is not None:
        try:
            session.rollback()
        except Exception:  # the connection may be gone; the pool replaces it
            log.debug("rollback after a database error failed", exc_info=True)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def on_problem(error: Problem) -> Response:
        if error.status >= 500:
            _rollback()
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> Response:
        return problem_response(_http_problem(error))

    @app.errorhandler(DBAPIError)
    def on_database_error(error: DBAPIError) -> Response:
        _rollback()
        if is_statement_timeout(error.orig):  # PostgreSQL's statement_timeout
            seconds = current_app.extensions[EXTENSION].settings.request_timeout_seconds
            log.warning("statement timeout path=%s", request.path)
            return problem_response(DeadlineExceeded(seconds, "in one database statement"))
        if isinstance(error, OperationalError) or error.connection_invalidated:
            log.warning("database unavailable path=%s error=%s", request.path, error.orig)
            return problem_response(
                Unavailable(
                    "the database is unavailable; retry shortly",
                    headers={"Retry-After": DB_RETRY_AFTER_SECONDS},
                )
            )
        if isinstance(error, DataError):  # a value the database refuses: NUL, out of range
            log.info("data refused by the database path=%s error=%s", request.path, error.orig)
            return problem_response(
                Invalid.at(["body"], "a value in the request does not fit the database")
            )
        if isinstance(error, IntegrityError):  # lost a race with a concurrent request
            log.info("integrity conflict path=%s error=%s", request.path, error.orig)
            return problem_response(
                Conflict("the request conflicts with a concurrent change; retry it")
            )
        log.exception("database error path=%s", request.path)
        return problem_response(Problem("an unexpected database error occurred"))

    @app.errorhandler(Exception)
    def on_unexpected(error: Exception) -> Response:
        _rollback()
        log.exception("unhandled error path=%s", request.path)
        return problem_response(Problem("an unexpected error occurred; it has been logged"))
