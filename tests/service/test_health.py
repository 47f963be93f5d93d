"""Liveness, readiness, and a database outage answered with 503 — and recovered from."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator

import pytest

from service.app import create_app
from tests.support.fixtures import postgres_server  # noqa: F401  (a session fixture)
from tests.support.servers import free_port


def test_healthz_needs_no_database(settings):
    broken = dataclasses.replace(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/x")
    app = create_app({"settings": broken})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_readyz_checks_database_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_when_the_broker_is_down(settings):
    down = dataclasses.replace(settings, broker_url="redis://127.0.0.1:1/0")
    app = create_app({"settings": down})
    try:
        response = app.test_client().get("/readyz")
    finally:
        app.extensions["deltaflow"].engine.dispose()
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert [e["loc"] for e in response.get_json()["errors"]] == [["broker"]]


def test_unknown_routes_are_problem_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_a_wrong_method_is_405_with_allow(client, auth):
    response = client.put("/api/v1/jobs", headers=auth)
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "GET" in response.headers["Allow"]


class Forwarder:
    """A TCP port that forwards to PostgreSQL while switched on: a database that can vanish."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._sockets.clear()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                pipe = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                pipe.start()
                self._threads.append(pipe)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


@pytest.fixture
def postgres_app(postgres_server, settings) -> Iterator[tuple]:  # noqa: F811
    """The app on a fresh migrated PostgreSQL database reached through a Forwarder."""
    from service.db import make_engine, make_sessionmaker, transaction
    from service.migrate import upgrade
    from service.tenants import create_tenant_key

    name = postgres_server.create_database()
    direct = postgres_server.sqlalchemy_url(name)
    upgrade(direct)
    engine = make_engine(direct)
    with transaction(make_sessionmaker(engine)) as session:
        key = create_tenant_key(session, "acme")
    engine.dispose()
    forwarder = Forwarder(postgres_server.port)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{forwarder.port}/{name}"
    app = create_app({"settings": dataclasses.replace(settings, database_url=url)})
    yield app, forwarder, {"Authorization": f"Bearer {key}"}
    app.extensions["deltaflow"].engine.dispose()
    forwarder.stop()
    postgres_server.drop_database(name)


@pytest.mark.integration
def test_a_database_outage_is_503_with_retry_after_and_heals_by_itself(postgres_app):
    app, forwarder, auth = postgres_app
    client = app.test_client()

    down = client.get("/api/v1/jobs", headers=auth)
    assert down.status_code == 503
    assert down.mimetype == "application/problem+json"
    assert int(down.headers["Retry-After"]) > 0
    assert client.get("/readyz").status_code == 503

    forwarder.start()
    assert client.get("/api/v1/jobs", headers=auth).status_code == 200

    forwarder.stop()  # pooled connections die mid-flight
    assert client.get("/api/v1/jobs", headers=auth).status_code == 503

    forwarder.start()
    assert client.get("/api/v1/jobs", headers=auth).status_code == 200
    assert client.get("/readyz").status_code == 200
