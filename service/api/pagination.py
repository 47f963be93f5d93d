"""Keyset pagination, newest first, with an opaque cursor over (created_at, id).

Any model with ``created_at`` and ``id`` columns (jobs, datasets, batches) pages the same
way: ``paginate(session, query, Model, limit, cursor) -> (items, next_cursor)``.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from service.problems import Invalid
from service.timeutil import as_utc


class PageQuery(BaseModel):
    """``?limit=&cursor=`` (subclass it, keeping the ``Query`` suffix, to add filters).

    Unknown query parameters are 422: a misspelt filter must not silently list everything.
    """

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, ge=1, description="Page size (capped by the server).")
    cursor: str | None = Field(default=None, max_length=200, description="From the last page.")


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([as_utc(created_at).isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, item_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return as_utc(datetime.fromisoformat(stamp)), str(item_id)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Invalid.at(["query", "cursor"], "not a cursor returned by this API") from None


def paginate(
    session: Session,
    query: Select[Any],
    model: Any,
    limit: int | None,
    cursor: str | None,
    max_limit: int,
) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows, newest first; ``next_cursor`` is None on the last page."""
    size = min(limit or max_limit, max_limit)
    if cursor:
        created_at, item_id = decode_cursor(cursor)
        query = query.where(
            or_(
                model.created_at < created_at,
                and_(model.created_at == created_at, model.id < item_id),
            )
        )
    rows = list(
        session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(size + 1))
    )
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id)
