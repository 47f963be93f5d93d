"""Domain errors that the API renders as RFC 9457 problem details.

Domain functions raise these; one Flask error handler turns any of them into
``application/problem+json``. No Flask here, so the kernel and the worker can raise them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from service.schemas.spec import UNION_TAGS

PROBLEM_MEDIA_TYPE = "application/problem+json"

Loc = Sequence[str | int]


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(
        description="Where the error is, e.g. ['body', 'training', 'epochs']."
    )
    msg: str


class ProblemModel(BaseModel):
    """The body of every 4xx/5xx answer."""

    type: str = Field(description="A URI reference naming the problem type.")
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)
    quota: str | None = Field(
        default=None,
        description="Only in a 429 of type /problems/quota-exceeded: the quota the request "
        "is over (max_queued_jobs, max_storage_bytes).",
    )


class Problem(Exception):
    """An error with an HTTP status; subclasses fix the status and title."""

    status = 500
    title = "Internal Server Error"
    slug = "internal"

    def __init__(
        self,
        detail: str,
        errors: Iterable[tuple[Loc, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = [(list(loc), msg) for loc, msg in errors]
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [{"loc": loc, "msg": msg} for loc, msg in self.errors],
        }


class BadRequest(Problem):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(Problem):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class NotFound(Problem):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(Problem):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(Problem):
    status, title, slug = 413, "Content Too Large", "too-large"


class UnsupportedMediaType(Problem):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


class Invalid(Problem):
    """Well-formed input with wrong shape or values (422) — always with field locations."""

    status, title, slug = 422, "Unprocessable Content", "validation"

    @classmethod
    def at(cls, loc: Loc, msg: str) -> Invalid:
        return cls(msg, errors=[(loc, msg)])


class QuotaExceeded(Problem):
    """A submit or upload over a tenant's admission quota (``service.quotas``); ``quota``
    names it. Nothing was stored."""

    status, title, slug = 429, "Too Many Requests", "quota-exceeded"

    def __init__(self, quota: str, detail: str) -> None:
        super().__init__(detail, errors=[(["body"], f"over the {quota} quota")])
        self.quota = quota

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "quota": self.quota}


class RateLimited(Problem):
    """Over the API key's rate limit (``DELTAFLOW_RATE_LIMIT``); ``Retry-After`` says when."""

    status, title, slug = 429, "Too Many Requests", "rate-limited"


class Unavailable(Problem):
    status, title, slug = 503, "Service Unavailable", "unavailable"


def clean_loc(loc: Iterable[str | int]) -> list[str | int]:
    """Drop pydantic's union tags and validator names, keeping field names and indices."""
    return [
        part for part in loc if not (isinstance(part, str) and (part in UNION_TAGS or "[" in part))
    ]


def from_validation_error(
    error: ValidationError, prefix: Loc = ("body",), detail: str | None = None
) -> Invalid:
    """A pydantic error as a 422 problem, locations prefixed with where the input came from."""
    items: list[tuple[Loc, str]] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for err in error.errors(include_url=False, include_input=False):
        loc = [*prefix, *clean_loc(err["loc"])]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # Point at the discriminating field itself, e.g. [..., "dataset", "generator"].
            loc.append(str(err.get("ctx", {}).get("discriminator", "")).strip("'\""))
        key = (tuple(loc), err["msg"])
        if key not in seen:  # tagged unions can report the same field twice
            seen.add(key)
            items.append((loc, err["msg"]))
    first = items[0] if items else (list(prefix), "invalid")
    summary = detail or f"{'.'.join(str(p) for p in first[0])}: {first[1]}"
    if len(items) > 1 and detail is None:
        summary += f" (and {len(items) - 1} more)"
    return Invalid(summary, errors=items)
