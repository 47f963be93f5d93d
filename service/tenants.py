"""Tenants and API keys. A key is shown once; the database keeps only its SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import ApiKey, Tenant
from service.timeutil import utcnow

KEY_PREFIX = "dfk_"
DEFAULT_TENANT = "default"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_tenant_key(session: Session, tenant_name: str) -> str:
    """Create the tenant if needed and one new key for it; return the plaintext key.

    The caller commits. The key is 256 random bits; only its hash is stored.
    """
    tenant = get_or_create_tenant(session, tenant_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:12]))
    session.flush()
    return key


def authenticate(session: Session, key: str | None) -> str | None:
    """The tenant id a key belongs to, or None for a missing, unknown or revoked key."""
    if not key or len(key) > 200:
        return None
    digest = hash_key(key)
    row = session.execute(
        select(ApiKey.key_hash, ApiKey.tenant_id).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
        )
    ).first()
    # The lookup is by hash; compare again in constant time so no byte-wise early exit
    # on the secret-derived value ever decides the answer.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row.tenant_id


# --- for the command line: one short transaction on the configured database ---------------


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def issue_key(settings: Settings, tenant: str) -> str:
    """A new key for the tenant (created if needed), committed; the plaintext is returned."""
    with _session(settings) as session:
        return create_tenant_key(session, tenant)


def first_key(settings: Settings) -> str | None:
    """A key for the default tenant when the database has none yet; else None."""
    with _session(settings) as session:
        if session.scalar(select(func.count()).select_from(ApiKey)):
            return None
    return issue_key(settings, DEFAULT_TENANT)


def revoke_key(settings: Settings, key: str) -> None:
    with _session(settings) as session:
        session.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=utcnow())
        )
