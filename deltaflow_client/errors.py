"""The one exception the client raises: an HTTP problem, or a request that never got one."""

from __future__ import annotations

from typing import Any


class DeltaflowError(Exception):
    """A failed call, carrying the server's ``application/problem+json`` when there was one.

    ``status`` is the HTTP status (``None`` when no answer arrived: connection refused,
    timed out, or ``wait`` gave up); ``type``, ``title``, ``detail`` and ``errors`` are the
    problem's fields (``errors`` is a list of ``{"loc": [...], "msg": ...}``), and
    ``problem`` is the whole body as received.
    """

    def __init__(
        self,
        status: int | None,
        problem: dict[str, Any] | None = None,
        *,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        self.type: str | None = self.problem.get("type")
        self.title: str | None = self.problem.get("title")
        self.detail: str = detail or str(self.problem.get("detail") or self.title or "error")
        errors = self.problem.get("errors")
        self.errors: list[dict[str, Any]] = errors if isinstance(errors, list) else []
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.status} {self.title}: " if self.status and self.title else ""
        head = head or (f"{self.status}: " if self.status else "")
        lines = [f"{head}{self.detail}"]
        for error in self.errors:
            if not isinstance(error, dict):
                continue
            where = ".".join(str(part) for part in error.get("loc") or [])
            message = error.get("msg", "")
            lines.append(f"  {where}: {message}" if where else f"  {message}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DeltaflowError(status={self.status!r}, type={self.type!r}, detail={self.detail!r})"
