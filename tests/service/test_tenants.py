"""API keys: shown once, stored only as SHA-256 hashes, revocable."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from service import tenants
from service.db import transaction
from service.models import ApiKey, Tenant
from service.timeutil import utcnow


def test_a_key_is_stored_only_as_its_hash(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme")
    with sessions() as session:
        row = session.scalar(select(ApiKey))
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert not any(key in value for value in stored)
    assert key.startswith(tenants.KEY_PREFIX)
    assert len(key) > 40


def test_authenticate_finds_the_tenant_and_refuses_everything_else(sessions):
    with transaction(sessions) as session:
        first = tenants.create_tenant_key(session, "acme")
        second = tenants.create_tenant_key(session, "acme")
        other = tenants.create_tenant_key(session, "globex")
    with sessions() as session:
        acme = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        assert tenants.authenticate(session, first) == acme
        assert tenants.authenticate(session, second) == acme
        assert tenants.authenticate(session, other) not in (None, acme)
        for wrong in (None, "", first[:-1], first + "x", "x" * 5000):
            assert tenants.authenticate(session, wrong) is None
        assert session.scalar(select(Tenant).where(Tenant.name == "acme")) is not None
    assert len({first, second}) == 2


def test_a_revoked_key_no_longer_authenticates(sessions, client):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    with transaction(sessions) as session:
        session.scalar(select(ApiKey)).revoked_at = utcnow()
    assert client.get("/api/v1/jobs", headers=headers).status_code == 401


def test_the_scheme_must_be_bearer(make_key, client):
    key = make_key()
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Basic {key}"}).status_code == 401
    assert client.get("/api/v1/jobs", headers={"Authorization": f"bearer {key}"}).status_code == 200
