"""Rate limits per API key (flask-limiter): ``DELTAFLOW_RATE_LIMIT`` (e.g.
``"20/second;600/minute"``; empty = off), counted in ``DELTAFLOW_RATE_LIMIT_STORAGE_URL``.

- One budget per API key across every authenticated route (flask-limiter's *application*
  limits keyed by the key's id); unauthenticated requests (401), the dashboard, the docs
  and the health checks are not counted.
- Every counted response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
  ``RateLimit-Reset`` (seconds until the window resets, as the IETF RateLimit header
  fields draft has it) of the limit nearest to exhaustion; over it: 429 problem+json
  ``/problems/rate-limited`` with ``Retry-After``.
- A conditional GET answered 304 costs nothing (flask-limiter tests the limit before the
  view and deducts after it, only for answers other than 304): a poller that sends
  ``If-None-Match`` is never throttled for polling.
- Storage: a Redis URL shares the counters between every API process and host. The
  default is the broker's Redis when the broker is Redis (production), else ``memory://``:
  each API process counts on its own, so with N gunicorn processes a key gets up to N times
  the limit (requests are spread over the processes). A Redis that is down or slow (1 s
  socket timeout) never fails a request: the limiter falls back to counting in memory.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded

from service.api import API_PREFIX
from service.api.errors import problem_response
from service.api.plumbing import context
from service.config import Settings
from service.problems import RateLimited

EXTENSION = "deltaflow.limiter"
# Not counted: the API's documents (no key needed to read them).
FREE_PATHS = (API_PREFIX + "/openapi.json", API_PREFIX + "/docs")
REDIS_TIMEOUT_SECONDS = 1.0


def storage_uri(settings: Settings) -> str:
    """Where counters live: the setting, else the broker's Redis, else this process."""
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def init_app(app: Flask, settings: Settings) -> Limiter | None:
    """Install the limiter when ``settings.rate_limit`` is set."""
    if not settings.rate_limit.strip():
        return None
    uri = storage_uri(settings)
    options: dict[str, str | int] = {}
    if uri.startswith(("redis://", "rediss://")):
        options = {"socket_timeout": 1, "socket_connect_timeout": 1}
    # Registered before the limiter's own after_request, so it runs after it (Flask runs
    # them in reverse): the 304 rule has deducted by then and ``remaining`` is final.
    app.after_request(_headers)
    limiter = Limiter(
        key_func=_key_id,
        app=app,
        application_limits=[settings.rate_limit],
        application_limits_exempt_when=_not_counted,
        application_limits_deduct_when=lambda response: response.status_code != 304,
        headers_enabled=False,  # ours: RateLimit-* with a delta-seconds reset
        storage_uri=uri,
        storage_options=options,
        strategy="fixed-window",
        key_prefix="deltaflow",
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    app.extensions[EXTENSION] = limiter
    app.register_error_handler(RateLimitExceeded, _too_many)
    return limiter


def _identity_key() -> str:
    """The request's API key id, looked up through the app's key cache; "" without a valid
    key (the request is then not counted: it gets its 401 from the blueprint)."""
    if "rate_key" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        identity = None
        if scheme.lower() == "bearer" and key.strip():
            identity = context().keys.authenticate(key.strip())
        g.rate_key = identity.key_id if identity is not None else ""
    return str(g.rate_key)


def _key_id() -> str:
    return _identity_key()


def _not_counted() -> bool:
    path = request.path
    if not path.startswith(API_PREFIX + "/") or path in FREE_PATHS:
        return True
    return not _identity_key()


def _nearest(limiter: Limiter) -> RequestLimit | None:
    """Of the limits this request was counted against, the one nearest to exhaustion."""
    limits = limiter.current_limits
    if not limits:
        return None
    breached = [limit for limit in limits if limit.breached]
    if breached:
        return breached[-1]
    return min(limits, key=lambda limit: limit.remaining)


def _headers(response: Response) -> Response:
    from flask import current_app

    limiter = current_app.extensions.get(EXTENSION)
    limit = _nearest(limiter) if limiter is not None else None
    if limit is None:
        return response
    try:
        reset = max(0, math.ceil(limit.window[0] - time.time()))
        response.headers["RateLimit-Limit"] = str(limit.limit.amount)
        response.headers["RateLimit-Remaining"] = str(max(0, limit.remaining))
        response.headers["RateLimit-Reset"] = str(reset)
        if response.status_code == 429 and limit.breached:
            response.headers["Retry-After"] = str(max(1, reset))
    except Exception:  # the counters' storage failed: the answer goes out without them
        return response
    return response


def _too_many(error: RateLimitExceeded) -> Response:
    return problem_response(
        RateLimited(
            f"over this API key's rate limit of {error.description}; retry after the "
            "number of seconds in Retry-After",
        )
    )
