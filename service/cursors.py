"""Opaque cursors, one codec: keyset pages of lists, and the batch curves' epoch cursor.

Both are URL-safe base64 without padding. A client passes them back unchanged; one it
made up, or one issued for another batch, is a 422 at ``["query", "cursor"]``.

- A page cursor holds the last item's (created_at, id) as JSON: ``paginate`` lists any
  model with ``created_at`` and ``id`` (jobs, datasets, batches) newest first.
- An ordered page cursor holds the ordering it was made for and the last row's sort
  values and id: ``ordered_page`` lists by any keys (NULLs last in either direction,
  ties broken by id), so a page never repeats or skips a row that did not change.
- An epochs cursor holds one last-seen epoch per job of a batch, in batch order
  (``jobs.batch_index``): jobs progress at different speeds, so the cursor is not one
  epoch. Encoding: a version byte, 4 bytes binding the cursor to its batch, then the
  epochs as unsigned LEB128 varints, zlib-compressed (equal epochs compress to almost
  nothing). 1000 jobs at epoch 5000 take ~40 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, false, or_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.problems import Invalid
from service.timeutil import as_utc

EPOCHS_CURSOR_VERSION = 1
CURSOR_LOC = ("query", "cursor")
# Rows are created now: a cursor's date outside these years was not made by this API (and
# year 1 or 9999 overflowed on the way to the database).
MIN_CURSOR_YEAR, MAX_CURSOR_YEAR = 1970, 9000


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    """Raises ValueError for anything that is not URL-safe base64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- pages ---------------------------------------------------------------------------------


def page_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([as_utc(created_at).isoformat(), item_id], separators=(",", ":"))
    return _encode(raw.encode())


def read_page_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a page cursor holds; anything else (a made-up date in year 1
    or 9999, an id with a NUL, another shape) is 422."""
    try:
        stamp, item_id = json.loads(_decode(cursor))
        created_at = as_utc(datetime.fromisoformat(stamp))
        if not isinstance(item_id, str) or "\x00" in item_id or len(item_id) > 64:
            raise ValueError("not an id")
        if not MIN_CURSOR_YEAR <= created_at.year <= MAX_CURSOR_YEAR:
            raise ValueError("out of range")
        return created_at, item_id
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, RecursionError):
        raise Invalid.at(CURSOR_LOC, "not a cursor returned by this API") from None


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
        created_at, item_id = read_page_cursor(cursor)
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
    return rows, page_cursor(rows[-1].created_at, rows[-1].id)


def ordered_page(
    session: Session,
    query: Select[Any],
    keys: Sequence[tuple[ColumnElement[Any], bool]],
    id_column: Any,
    signature: str,
    limit: int | None,
    cursor: str | None,
    max_limit: int,
) -> tuple[list[Any], str | None]:
    """One page of ``query``'s rows (one entity per row) ordered by ``keys`` — (expression,
    descending) — NULLs last either way, ties broken by ``id_column`` in the last key's
    direction. ``signature`` names the ordering; a cursor made for another is a 422."""
    size = min(limit or max_limit, max_limit)
    # Each nullable key becomes (is-null flag ascending, value): NULLs sort last.
    columns: list[tuple[ColumnElement[Any], bool]] = []
    for expression, descending in keys:
        columns.append((case((expression.is_(None), 1), else_=0), False))
        columns.append((expression, descending))
    columns.append((id_column, keys[-1][1] if keys else False))
    if cursor:
        query = query.where(_after(columns, _read_ordered_cursor(cursor, signature, len(columns))))
    order = [c.desc() if descending else c.asc() for c, descending in columns]
    rows = session.execute(
        query.add_columns(*(c for c, _ in columns)).order_by(*order).limit(size + 1)
    ).all()
    items = [row[0] for row in rows]
    if len(rows) <= size:
        return items, None
    last = [_plain(value) for value in rows[size - 1][1:]]
    return items[:size], _encode(json.dumps([signature, last], separators=(",", ":")).encode())


def _after(columns: Sequence[tuple[ColumnElement[Any], bool]], values: list[Any]) -> Any:
    """Rows strictly after ``values`` in the lexicographic order of ``columns``. A NULL
    value is only ever equal to NULL (its flag, compared first, already set it apart)."""
    alternatives = []
    equal: list[Any] = []
    for (column, descending), value in zip(columns, values, strict=True):
        if value is None:
            beyond: Any = false()
            same: Any = column.is_(None)
        else:
            beyond = column < value if descending else column > value
            same = column == value
        alternatives.append(and_(*equal, beyond))
        equal.append(same)
    return or_(*alternatives)


def _plain(value: Any) -> Any:
    """A sort value as JSON: datetimes as ``{"t": iso}``."""
    if isinstance(value, datetime):
        return {"t": as_utc(value).isoformat()}
    return value


def _read_ordered_cursor(cursor: str, signature: str, size: int) -> list[Any]:
    try:
        made_for, values = json.loads(_decode(cursor))
        if made_for != signature or not isinstance(values, list) or len(values) != size:
            raise ValueError("another ordering")
        return [
            as_utc(datetime.fromisoformat(v["t"])) if isinstance(v, dict) else v for v in values
        ]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise Invalid.at(CURSOR_LOC, "not a cursor of this ordering") from None


# --- epochs of a batch's jobs --------------------------------------------------------------


def epochs_cursor(batch_id: str, epochs: Sequence[int]) -> str:
    payload = bytearray()
    for epoch in epochs:
        value = int(epoch)
        while True:
            byte, value = value & 0x7F, value >> 7
            payload.append(byte | (0x80 if value else 0))
            if not value:
                break
    header = bytes([EPOCHS_CURSOR_VERSION]) + _batch_tag(batch_id)
    return _encode(header + zlib.compress(bytes(payload), 9))


def read_epochs_cursor(batch_id: str, cursor: str | None, size: int) -> list[int]:
    """Last-seen epochs for ``size`` jobs; no cursor means nothing seen yet."""
    if not cursor:
        return [0] * size
    try:
        raw = _decode(cursor)
        if raw[:1] != bytes([EPOCHS_CURSOR_VERSION]) or raw[1:5] != _batch_tag(batch_id):
            raise ValueError("foreign cursor")
        payload = zlib.decompressobj().decompress(raw[5:], 16 * size + 16)
        epochs: list[int] = []
        value = shift = 0
        for byte in payload:
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                epochs.append(value)
                value = shift = 0
    except (ValueError, binascii.Error, zlib.error) as exc:
        raise Invalid.at(CURSOR_LOC, "not a cursor of this batch") from exc
    # Positions past the end (none today: batches never grow) start unseen.
    return (epochs + [0] * size)[:size]


def _batch_tag(batch_id: str) -> bytes:
    return hashlib.blake2b(batch_id.encode("utf-8"), digest_size=4).digest()
