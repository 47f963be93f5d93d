"""Waiting for a condition with a timeout: the suite never sleeps for a guessed duration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold in time; the message says what we waited for."""


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; return that value.

    Exceptions from ``condition`` count as "not yet" (a server may be restarting), but the
    last one is reported if time runs out. ``describe`` adds the state seen at the end.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
        except Exception as exc:  # the condition polls services that may be down
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else ""
            state = f"; state: {describe()}" if describe is not None else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}{state}")
        time.sleep(interval)
