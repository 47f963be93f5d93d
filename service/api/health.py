"""``/healthz`` (the process answers) and ``/readyz`` (the database and the broker answer)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from kombu import Connection
from sqlalchemy import text

from service.api import plumbing
from service.api.openapi import PROBLEM_REF
from service.api.plumbing import respond
from service.problems import PROBLEM_MEDIA_TYPE, Unavailable
from service.queue import celery_config
from service.schemas.responses.health import Health

log = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0

bp = APIBlueprint("health", __name__, abp_tags=[Tag(name="health")])

_UNAVAILABLE: dict[str | int, Any] = {
    503: {
        "description": "A dependency is down",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    }
}


@bp.get("/healthz", summary="Liveness: the process answers (no database)", responses={200: Health})
def healthz() -> Response:
    return respond({"status": "ok", "checks": {}})


@bp.get(
    "/readyz", summary="Readiness: database and broker", responses={200: Health, **_UNAVAILABLE}
)
def readyz() -> Response:
    checks = {"database": _check_database(), "broker": _check_broker()}
    failed = sorted(name for name, result in checks.items() if result != "ok")
    if failed:
        raise Unavailable(
            "not ready: " + "; ".join(f"{name}: {checks[name]}" for name in failed),
            errors=[([name], checks[name]) for name in failed],
            headers={"Retry-After": "5"},
        )
    return respond({"status": "ok", "checks": checks})


def _check_database() -> str:
    session = plumbing.db()
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready
        session.rollback()
        log.warning("readyz database check failed: %s", exc)
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _check_broker() -> str:
    settings = plumbing.settings()
    options = {}
    if settings.uses_filesystem_broker:
        options = celery_config(settings)["broker_transport_options"]
    try:
        with Connection(
            settings.broker_url,
            transport_options=options,
            connect_timeout=BROKER_TIMEOUT_SECONDS,
        ) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises transport-specific errors
        log.warning("readyz broker check failed: %s", exc)
        return f"unreachable ({type(exc).__name__})"
    return "ok"
