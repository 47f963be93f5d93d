"""HTTP for the client: one ``requests`` session, bounded retries, problems as exceptions.

What is retried, and why it is safe:

- 429 and 503 on any request: the server did not do the work (over a rate limit or a
  quota, or its database was unavailable and the transaction rolled back). The wait is
  the answer's ``Retry-After`` (seconds or an HTTP date), else an exponential back-off;
  a ``Retry-After`` longer than ``max_retry_wait`` is not slept through but raised.
- A connection error or timeout only on requests that are safe to repeat: GET, PUT,
  DELETE, and a POST that carries an ``Idempotency-Key`` (the server answers a repeat
  with the first job) or is marked ``idempotent`` (predict). A plain POST may have been
  done before the connection broke, so it is raised instead.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from deltaflow_client.errors import DeltaflowError

API_PATH = "/api/v1"
RETRY_STATUSES = frozenset({429, 503})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = "deltaflow-client/0.1"


def api_base(url: str) -> str:
    """``http://host:8000``, ``…/`` and ``…/api/v1`` all mean ``http://host:8000/api/v1``."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return base if base.endswith(API_PATH) else base + API_PATH


def segment(value: str) -> str:
    """An id as one path segment (an id with a slash must not reach another route)."""
    return quote(str(value), safe="")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_seconds(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, … capped at 8 s: for retries the server gave no wait for."""
    return float(min(0.5 * 2**attempt, 8.0))


def reason(error: Exception) -> str:
    """The last words of urllib3's nested message: "[Errno 111] Connection refused"."""
    inner = error.args[0] if error.args else error
    text = str(getattr(inner, "reason", inner))
    return text.rsplit("): ", 1)[-1].rsplit(": ", 1)[-1].strip("')\"") or type(error).__name__


def problem_of(response: requests.Response) -> DeltaflowError:
    """The error for a 4xx/5xx answer: its problem+json, or a short excerpt of its body."""
    problem: dict[str, Any] = {}
    if "json" in response.headers.get("Content-Type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            problem = body
    if not problem:
        text = response.text.strip()[:300]
        problem = {"title": response.reason or "HTTP error", "detail": text or response.reason}
    return DeltaflowError(response.status_code, problem)


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object; anything else means the URL is not a Deltaflow API."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DeltaflowError(
            response.status_code,
            {"title": "Not a Deltaflow answer"},
            detail=f"{response.request.method} {response.url} did not answer a JSON object",
        )
    return body


class Transport:
    """Authenticated requests against one Deltaflow API base (``…/api/v1``)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float,
        retries: int,
        max_retry_wait: float,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base = api_base(url)
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json, application/problem+json"
        # Replaced by tests that check which waits were asked for without waiting.
        self.sleep: Callable[[float], None] = time.sleep

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """One call with bounded retries; any answer of 400 or more raises ``DeltaflowError``."""
        method = method.upper()
        url = self.base + path
        headers = dict(headers or {})
        if idempotent is None:
            idempotent = method in SAFE_METHODS or "Idempotency-Key" in headers
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            for _, (_, stream) in (files or {}).items():
                if hasattr(stream, "seek"):
                    stream.seek(0)  # a retried upload sends the file from its start again
            try:
                response = self.session.request(
                    method,
                    url,
                    params=query,
                    json=json,
                    data=data,
                    files=files,
                    headers=headers,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                if not idempotent or attempt >= self.retries:
                    raise DeltaflowError(
                        None,
                        {"title": type(error).__name__},
                        detail=f"{method} {url}: no answer ({reason(error)})",
                    ) from error
                self.sleep(backoff_seconds(attempt))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                wait = backoff_seconds(attempt) if wait is None else wait
                if wait <= self.max_retry_wait:
                    response.close()
                    self.sleep(wait)
                    attempt += 1
                    continue
            if response.status_code >= 400:
                raise problem_of(response)
            return response

    def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return json_object(self.request(method, path, **kwargs))
