"""``Idempotency-Key``: a repeated create returns what the first one made.

A create that carries a key stores it with the sha256 of its request body (canonical
JSON). A repeat with the same body gets the first row back, one with another body is
422, and concurrent repeats create one row: the unique (tenant, key) constraint makes
the loser roll back and return the winner (jobs and batches alike).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Batch, Job
from service.problems import Invalid

Keyed = TypeVar("Keyed", Job, Batch)


def fingerprint(body: Mapping[str, Any]) -> str:
    """sha256 of a request body in canonical JSON (key order and spacing do not matter)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find(session: Session, model: type[Keyed], tenant_id: str, key: str) -> Keyed | None:
    """The tenant's job or batch created with ``key``, if any."""
    return session.scalar(
        select(model).where(model.tenant_id == tenant_id, model.idempotency_key == key)
    )


def replay(row: Keyed, body_fingerprint: str) -> Keyed:
    """The first row again, if the repeat carries the same body; 422 otherwise."""
    if row.request_hash != body_fingerprint:
        raise Invalid.at(
            ["header", "Idempotency-Key"],
            "this Idempotency-Key was used with a different request body",
        )
    return row
