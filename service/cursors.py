"""Opaque cursors, one codec: keyset pages of lists, and the batch curves' epoch cursor.

Both are URL-safe base64 without padding. A client passes them back unchanged; one it
made up, or one issued for another batch, is a 422 at ``["query", "cursor"]``.

- A page cursor holds the last item's (created_at, id) as JSON: ``paginate`` lists any
  model with ``created_at`` and ``id`` (jobs, datasets, batches) newest first.
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

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from service.problems import Invalid
from service.timeutil import as_utc

EPOCHS_CURSOR_VERSION = 1
CURSOR_LOC = ("query", "cursor")


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
    try:
        stamp, item_id = json.loads(_decode(cursor))
        return as_utc(datetime.fromisoformat(stamp)), str(item_id)
    except (ValueError, TypeError, UnicodeDecodeError):
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
