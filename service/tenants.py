"""Tenants and API keys. A key is shown once; the database keeps only its SHA-256 hash.

The key lifecycle of ``deltaflow create-key``, ``list-keys`` and ``revoke-key``: a key has
a prefix (its first 12 characters, shown by ``list-keys`` and used to revoke it), an
optional name and expiry, and a last-used time written at most once a minute per key and
API process (``service.keycache``). Requests authenticate through that in-process cache;
``find_key`` is the one database read behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import ApiKey, Tenant
from service.problems import Conflict, NotFound
from service.timeutil import as_utc, utcnow

KEY_PREFIX = "dfk_"
PREFIX_LENGTH = 12  # "dfk_" and 8 random characters: 48 bits, unique among all keys
MAX_KEY_LENGTH = 200
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Identity:
    """Who a request is: its tenant and the key it authenticated with."""

    tenant_id: str
    key_id: str
    prefix: str
    expires_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_tenant_key(
    session: Session,
    tenant_name: str,
    name: str | None = None,
    expires_in_days: float | None = None,
) -> str:
    """Create the tenant if needed and one new key for it; return the plaintext key.

    The caller commits. The key is 256 random bits; only its hash is stored, with the
    prefix that names it (drawn again in the unlikely case that another key has it).
    """
    tenant = get_or_create_tenant(session, tenant_name)
    while True:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        taken = session.scalar(select(ApiKey.id).where(ApiKey.prefix == key[:PREFIX_LENGTH]))
        if taken is None:
            break
    now = utcnow()
    expires_at = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    session.add(
        ApiKey(
            tenant_id=tenant.id,
            key_hash=hash_key(key),
            prefix=key[:PREFIX_LENGTH],
            name=name,
            created_at=now,
            expires_at=expires_at,
        )
    )
    session.flush()
    return key


def well_formed(key: str | None) -> bool:
    return bool(key) and len(key or "") <= MAX_KEY_LENGTH


def find_key(connection: Connection | Session, digest: str) -> Identity | None:
    """The identity of the key with this hash unless it is unknown or revoked (expiry is
    the caller's check, so a cached identity expires on time). One unique-index read."""
    row = connection.execute(
        select(
            ApiKey.key_hash, ApiKey.tenant_id, ApiKey.id, ApiKey.prefix, ApiKey.expires_at
        ).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).first()
    # The lookup is by hash; compare again in constant time so no byte-wise early exit
    # on the secret-derived value ever decides the answer.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Identity(row.tenant_id, row.id, row.prefix, as_utc(row.expires_at))


def authenticate(
    connection: Connection | Session, key: str | None, now: datetime | None = None
) -> Identity | None:
    """The identity of a valid key: None if missing, unknown, revoked or expired."""
    if not well_formed(key):
        return None
    identity = find_key(connection, hash_key(str(key)))
    if identity is None or identity.expired(now or utcnow()):
        return None
    return identity


def touch_key(connection: Connection, key_id: str, now: datetime) -> None:
    """Record that the key was used (the caller decides how seldom: not once per request)."""
    connection.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


def list_keys(session: Session, tenant_name: str | None = None) -> list[dict[str, Any]]:
    """Every key (or one tenant's), oldest first: prefix, tenant, name and times — never
    the key, which is not stored."""
    query = (
        select(ApiKey, Tenant.name)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name)
    return [
        {
            "prefix": key.prefix,
            "tenant": tenant,
            "name": key.name,
            "created": as_utc(key.created_at),
            "expires": as_utc(key.expires_at),
            "last_used": as_utc(key.last_used_at),
            "revoked": as_utc(key.revoked_at),
        }
        for key, tenant in session.execute(query)
    ]


def revoke_by_prefix(session: Session, prefix: str) -> None:
    """Revoke the one key with this prefix (or this whole key). Revoking twice is harmless.

    A prefix that names no key is ``NotFound``; one that names several (possible only for
    a prefix shorter than the 12 characters ``list-keys`` shows) is ``Conflict``.
    """
    prefix = prefix[:PREFIX_LENGTH]
    if len(prefix) < len(KEY_PREFIX) + 1:
        raise NotFound(f"{prefix!r} is too short to name a key")
    ids = session.scalars(select(ApiKey.id).where(ApiKey.prefix.startswith(prefix))).all()
    if not ids:
        raise NotFound(f"no key has the prefix {prefix!r}")
    if len(ids) > 1:
        raise Conflict(f"{len(ids)} keys have the prefix {prefix!r}; give all 12 characters")
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == ids[0], ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# --- for the command line: one short transaction on the configured database ---------------


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def issue_key(
    settings: Settings, tenant: str, name: str | None = None, expires_in_days: float | None = None
) -> str:
    """A new key for the tenant (created if needed), committed; the plaintext is returned."""
    with _session(settings) as session:
        return create_tenant_key(session, tenant, name, expires_in_days)


def first_key(settings: Settings) -> str | None:
    """A key for the default tenant when the database has none yet; else None."""
    with _session(settings) as session:
        if session.scalar(select(func.count()).select_from(ApiKey)):
            return None
    return issue_key(settings, DEFAULT_TENANT)


def keys(settings: Settings, tenant: str | None = None) -> list[dict[str, Any]]:
    with _session(settings) as session:
        return list_keys(session, tenant)


def revoke_key(settings: Settings, prefix: str) -> None:
    """Revoke a key by its prefix (a whole key works too: its first 12 characters are used)."""
    with _session(settings) as session:
        revoke_by_prefix(session, prefix)
