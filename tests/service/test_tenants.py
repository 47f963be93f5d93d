"""API keys: shown once, stored only as SHA-256 hashes, named by a prefix, expiring,
revocable; authenticated through the in-process cache (``service.keycache``)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from service import tenants
from service.app import create_app
from service.db import transaction
from service.keycache import KeyCache
from service.models import ApiKey, Tenant
from service.problems import Conflict, NotFound
from service.timeutil import as_utc, utcnow

JOBS = "/api/v1/jobs"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_is_stored_only_as_its_hash(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme", name="ci")
    with sessions() as session:
        row = session.scalar(select(ApiKey))
        stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert not any(key in value for value in stored)
    assert key.startswith(tenants.KEY_PREFIX)
    assert len(key) > 40
    assert row.prefix == key[: tenants.PREFIX_LENGTH]
    assert (row.name, row.expires_at, row.last_used_at) == ("ci", None, None)


def test_authenticate_finds_the_tenant_and_refuses_everything_else(sessions):
    with transaction(sessions) as session:
        first = tenants.create_tenant_key(session, "acme")
        second = tenants.create_tenant_key(session, "acme")
        other = tenants.create_tenant_key(session, "globex")
    with sessions() as session:
        acme = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        assert tenants.authenticate(session, first).tenant_id == acme
        assert tenants.authenticate(session, second).tenant_id == acme
        assert tenants.authenticate(session, other).tenant_id not in (None, acme)
        assert tenants.authenticate(session, first).prefix == first[:12]
        assert (
            tenants.authenticate(session, first).key_id
            != tenants.authenticate(session, second).key_id
        )
        for wrong in (None, "", first[:-1], first + "x", "x" * 5000):
            assert tenants.authenticate(session, wrong) is None
        assert session.scalar(select(Tenant).where(Tenant.name == "acme")) is not None
    assert len({first, second}) == 2


def test_an_expired_key_is_refused_on_time(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme", expires_in_days=1)
    with sessions() as session:
        expires = as_utc(session.scalar(select(ApiKey.expires_at)))
        assert tenants.authenticate(session, key, now=expires - timedelta(seconds=1))
        assert tenants.authenticate(session, key, now=expires) is None


def test_revoking_by_prefix(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme")
        keep = tenants.create_tenant_key(session, "acme")
    with transaction(sessions) as session:
        tenants.revoke_by_prefix(session, key[:12])
        tenants.revoke_by_prefix(session, key[:12])  # twice is harmless
    with sessions() as session:
        assert tenants.authenticate(session, key) is None
        assert tenants.authenticate(session, keep) is not None
        with pytest.raises(NotFound):
            tenants.revoke_by_prefix(session, "dfk_nothere")
        with pytest.raises(NotFound):
            tenants.revoke_by_prefix(session, "dfk")  # too short to name anything


def test_a_prefix_naming_two_keys_revokes_neither(sessions):
    with transaction(sessions) as session:
        first = tenants.create_tenant_key(session, "acme")
        second = tenants.create_tenant_key(session, "acme")
        # Make the two share their first 8 characters (48 random bits rarely do).
        session.scalar(select(ApiKey).where(ApiKey.prefix == second[:12])).prefix = (
            first[:8] + "zzzz"
        )
    with sessions() as session:
        with pytest.raises(Conflict):
            tenants.revoke_by_prefix(session, first[:8])
        assert tenants.authenticate(session, first) is not None


def test_list_keys_shows_everything_but_the_key(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme", name="laptop", expires_in_days=30)
        tenants.create_tenant_key(session, "globex")
    with transaction(sessions) as session:
        tenants.revoke_by_prefix(session, key)
    with sessions() as session:
        everything = tenants.list_keys(session)
        acme = tenants.list_keys(session, "acme")
    assert [row["tenant"] for row in everything] == ["acme", "globex"]
    [row] = acme
    assert set(row) == {"prefix", "tenant", "name", "created", "expires", "last_used", "revoked"}
    assert row["prefix"] == key[:12]
    assert row["name"] == "laptop"
    assert row["revoked"] is not None
    assert row["last_used"] is None
    assert timedelta(days=29) < row["expires"] - row["created"] <= timedelta(days=30)
    assert key not in repr(everything)


# --- the cache: how soon revocation and expiry take effect, last-used writes ----------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_answers_from_memory_until_its_ttl_then_sees_the_revocation(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme")
    clock = Clock()
    cache = KeyCache(sessions.kw["bind"], ttl=5.0, clock=clock)
    assert cache.authenticate(key) is not None
    with transaction(sessions) as session:
        tenants.revoke_by_prefix(session, key)
    clock.now += 4.9
    assert cache.authenticate(key) is not None  # cached: revocation not seen yet
    clock.now += 0.2
    assert cache.authenticate(key) is None  # the entry expired; the database says revoked
    clock.now += 1.0
    assert cache.authenticate(key) is None  # and the refusal is cached too


def test_the_cache_refuses_an_expired_key_whatever_it_holds(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme", expires_in_days=1)
    wall = [utcnow()]
    cache = KeyCache(sessions.kw["bind"], ttl=3600.0, wall_clock=lambda: wall[0])
    assert cache.authenticate(key) is not None
    wall[0] += timedelta(days=1)
    assert cache.authenticate(key) is None


def test_last_used_is_written_at_most_once_a_minute_per_key(sessions):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme")
    clock = Clock()
    wall = [utcnow()]
    cache = KeyCache(sessions.kw["bind"], ttl=5.0, clock=clock, wall_clock=lambda: wall[0])

    def last_used():
        with sessions() as session:
            return as_utc(session.scalar(select(ApiKey.last_used_at)))

    first_use = wall[0]
    cache.authenticate(key)
    assert last_used() == first_use
    for _ in range(10):  # many requests within the minute: no further write
        clock.now += 5.0
        wall[0] += timedelta(seconds=5)
        cache.authenticate(key)
    assert last_used() == first_use
    clock.now += 11.0
    wall[0] += timedelta(seconds=11)
    cache.authenticate(key)
    assert last_used() == wall[0]


def test_the_cache_stays_bounded(sessions):
    cache = KeyCache(sessions.kw["bind"], ttl=60.0, max_entries=8)
    for i in range(50):
        assert cache.authenticate(f"dfk_made_up_{i}") is None
    assert len(cache._entries) == 8


# --- over HTTP --------------------------------------------------------------------------------


def test_a_revoked_key_no_longer_authenticates(settings, sessions):
    """With the cache off, at once; with it on, once the cache forgets (at most its TTL)."""
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme")
    for ttl in (0.0, 5.0):
        with transaction(sessions) as session:
            session.scalar(select(ApiKey)).revoked_at = None
        tuned = dataclasses.replace(settings, auth_cache_seconds=ttl)
        app = create_app({"settings": tuned, "TESTING": True})
        client = app.test_client()
        assert client.get(JOBS, headers=bearer(key)).status_code == 200
        with transaction(sessions) as session:
            session.scalar(select(ApiKey)).revoked_at = utcnow()
        if ttl:
            assert client.get(JOBS, headers=bearer(key)).status_code == 200  # still cached
            app.extensions["deltaflow"].keys.forget()  # what the TTL does in time
        assert client.get(JOBS, headers=bearer(key)).status_code == 401
        app.extensions["deltaflow"].engine.dispose()


def test_an_expired_key_answers_401(sessions, client):
    with transaction(sessions) as session:
        key = tenants.create_tenant_key(session, "acme", expires_in_days=1)
    assert client.get(JOBS, headers=bearer(key)).status_code == 200
    with transaction(sessions) as session:
        session.scalar(select(ApiKey)).expires_at = utcnow() - timedelta(seconds=1)
    client.application.extensions["deltaflow"].keys.forget()
    response = client.get(JOBS, headers=bearer(key))
    assert response.status_code == 401
    assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_the_identity_is_on_flask_g_for_rate_limits(make_key, app):
    from service.api import plumbing

    key = make_key("acme")
    seen = {}

    @app.after_request
    def look(response):
        seen["key"] = plumbing.current_key()
        return response

    assert app.test_client().get(JOBS, headers=bearer(key)).status_code == 200
    identity = seen["key"]
    assert identity.prefix == key[:12]
    assert identity.tenant_id
    assert identity.key_id
    app.test_client().get("/healthz")
    assert seen["key"] is None  # unauthenticated routes have none


def test_the_scheme_must_be_bearer(make_key, client):
    key = make_key()
    assert client.get(JOBS, headers={"Authorization": f"Basic {key}"}).status_code == 401
    assert client.get(JOBS, headers={"Authorization": f"bearer {key}"}).status_code == 200
