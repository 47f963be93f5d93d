"""A worker's PostgreSQL connections carry keepalives and a TCP user timeout of a lease."""

from __future__ import annotations

import pytest

from worker import runtime as worker_runtime

pytestmark = pytest.mark.integration


def test_worker_connections_give_up_on_a_silent_peer_after_a_lease(production_backend, monkeypatch):
    for key, value in production_backend.env(lease_seconds=6).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(worker_runtime, "_current", None)
    rt = worker_runtime.runtime()
    engine = rt.factory.kw["bind"]
    try:
        connection = engine.raw_connection()
        try:
            parameters = connection.driver_connection.info.get_parameters()
        finally:
            connection.close()
    finally:
        engine.dispose()
        monkeypatch.setattr(worker_runtime, "_current", None)
    assert parameters["tcp_user_timeout"] == "6000"
    assert parameters["keepalives"] == "1"
    assert parameters["keepalives_idle"] == "2"
    assert parameters["keepalives_count"] == "3"


def test_the_settings_scale_with_the_lease():
    assert worker_runtime.tcp_settings(60)["tcp_user_timeout"] == 60_000
    assert worker_runtime.tcp_settings(60)["keepalives_idle"] == 20
    assert worker_runtime.tcp_settings(0.5)["keepalives_interval"] == 1
