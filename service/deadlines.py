"""A request's deadline: past it, the request stops at its next check and answers 503.

The API sets one per request (``DELTAFLOW_REQUEST_TIMEOUT_SECONDS``, ``service.api.deadline``)
and checks it where a request can spend long: between the steps of the synchronous
computations (each parameter of a gradient check, each step of the learning-rate finder,
each chunk of a prediction, every 262,144 values of a CSV upload) and before every SQL
statement of the request's session. On PostgreSQL one statement is bounded by the same
number of seconds (``statement_timeout``), so a lock wait cannot outlast it either.

Nothing is committed after the deadline: a request past it raises ``DeadlineExceeded``
before its next statement, its transaction is rolled back, and the answer is 503
problem+json with ``Retry-After``. Once the request's session commits, the deadline is
off for the rest of the request: what it stored is answered 2xx (a job's dispatch pass
after its commit, say, is never cut short into a 503 that a client would retry). Work
between two checks is bounded by the compute budgets (``service.budgets``: about a second
of one core), not by this module — a thread cannot be stopped from outside.

No Flask here: the kernel and the engine's callers use it; the deadline lives in a
context variable, so each server thread has its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event

from service.problems import Problem

SETTING = "DELTAFLOW_REQUEST_TIMEOUT_SECONDS"
RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True)
class Deadline:
    expires: float  # time.monotonic()
    seconds: float


_current: ContextVar[Deadline | None] = ContextVar("deltaflow_deadline", default=None)


class DeadlineExceeded(Problem):
    """The request ran past its deadline; nothing it did was committed."""

    status, title, slug = 503, "Service Unavailable", "request-timeout"

    def __init__(self, seconds: float, doing: str) -> None:
        detail = (
            f"the request ran past its deadline of {seconds:g} s ({SETTING}) {doing}; "
            "nothing was stored"
        )
        super().__init__(
            detail, errors=[(["request"], detail)], headers={"Retry-After": RETRY_AFTER_SECONDS}
        )


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Run the block under a deadline ``seconds`` from now (0 or less: none)."""
    token = _current.set(Deadline(time.monotonic() + seconds, seconds) if seconds > 0 else None)
    try:
        yield
    finally:
        _current.reset(token)


def check(doing: str = "") -> None:
    """Raise ``DeadlineExceeded`` when the current deadline has passed (cheap otherwise)."""
    current = _current.get()
    if current is not None and time.monotonic() > current.expires:
        raise DeadlineExceeded(current.seconds, doing)


def remaining() -> float | None:
    """Seconds left before the current deadline (negative past it), or None without one."""
    current = _current.get()
    return None if current is None else current.expires - time.monotonic()


def checker(doing: str) -> Any:
    """``check`` bound to what is being done, for loops that take a callback."""

    def tick() -> None:
        check(doing)

    return tick


def disarm() -> None:
    """No deadline for the rest of the current request (it committed)."""
    _current.set(None)


def watch(engine: Engine) -> None:
    """Check the deadline before every statement ``engine`` runs for a request, and drop
    it once a transaction commits."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(*_args: Any) -> None:
        check("waiting for the database")

    @event.listens_for(engine, "commit")
    def _committed(*_args: Any) -> None:
        disarm()


def statement_timeout_args(url: str, seconds: float) -> dict[str, Any]:
    """libpq's ``options`` bounding each PostgreSQL statement to ``seconds`` (none on SQLite)."""
    if not url.startswith("postgresql") or seconds <= 0:
        return {}
    return {"options": f"-c statement_timeout={max(1, round(seconds * 1000))}"}


def is_statement_timeout(error: BaseException) -> bool:
    """PostgreSQL cancelled the statement at ``statement_timeout`` (SQLSTATE 57014)."""
    return getattr(error, "sqlstate", None) == "57014"
