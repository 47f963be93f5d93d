"""Fixtures for the API tests: specs, row counts, broker message counts, direct inserts."""

from __future__ import annotations

import copy
import dataclasses
import io
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from service import curve_store
from service.db import transaction
from service.models import ApiKey, CurvePoint, Dataset, DatasetBlob, Job, Tenant, TrainedModel
from service.timeutil import utcnow
from tests.support.fixtures import postgres_server, redis_server  # noqa: F401  (session fixtures)

TABLES = (Tenant, ApiKey, Dataset, DatasetBlob, Job, CurvePoint, TrainedModel)

SPIRALS_SPEC: dict[str, Any] = {
    "network": {
        "layers": [{"units": 8, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "spirals", "n_samples": 120, "seed": 1},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.02}, "epochs": 20},
}


@pytest.fixture
def factory(sessions):  # type: ignore[no-untyped-def]
    """The test's migrated SQLite database's session factory."""
    return sessions


@pytest.fixture
def session(factory):  # type: ignore[no-untyped-def]
    with factory() as session:
        yield session


@pytest.fixture
def spec() -> dict[str, Any]:
    """A fresh copy of a small valid job spec (mutate it freely)."""
    return copy.deepcopy(SPIRALS_SPEC)


@pytest.fixture
def row_counts(sessions):  # type: ignore[no-untyped-def]
    """``row_counts() -> {table: rows}`` to assert that a failed request wrote nothing."""

    def count() -> dict[str, int]:
        with sessions() as session:
            return {
                t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in TABLES
            }

    return count


@pytest.fixture
def queued_messages(settings):  # type: ignore[no-untyped-def]
    """``queued_messages() -> int``: message files in the filesystem broker's queue folder."""
    folder = settings.broker_dir / "queue"

    def count() -> int:
        return len(list(folder.glob("*.msg"))) if folder.exists() else 0

    return count


@pytest.fixture
def tenant_of(sessions):  # type: ignore[no-untyped-def]
    def find(name: str = "acme") -> str:
        with sessions() as session:
            return session.scalar(select(Tenant.id).where(Tenant.name == name))

    return find


@pytest.fixture
def set_job(sessions):  # type: ignore[no-untyped-def]
    """``set_job(job_id, **columns)``: move a job as a worker would (bumping its version)."""

    def update(job_id: str, **values: Any) -> None:
        with transaction(sessions) as session:
            job = session.get(Job, job_id)
            for name, value in values.items():
                setattr(job, name, value)
            job.version += 1
            job.updated_at = utcnow()

    return update


@pytest.fixture
def add_points(sessions):  # type: ignore[no-untyped-def]
    """``add_points(job_id, epochs)``: curve rows as a worker flush would write them."""

    def add(job_id: str, epochs: range, seconds: float = 0.5) -> None:
        points = [
            {
                "epoch": epoch,
                "train_loss": 1.0 / epoch,
                "train_accuracy": 0.5,
                "learning_rate": 0.01,
                "seconds": seconds,
            }
            for epoch in epochs
        ]
        with transaction(sessions) as session:
            curve_store.insert_points(session, job_id, points)  # with the stored levels
            job = session.get(Job, job_id)
            job.epoch = max(job.epoch, epochs[-1])
            job.version += 1

    return add


def npz_bytes(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.fixture
def store_model(sessions):  # type: ignore[no-untyped-def]
    """``store_model(job_id, weights, biases, **meta)``: a TrainedModel row, as a worker writes."""

    def store(job_id: str, weights: list, biases: list, **meta: Any) -> None:
        arrays = {}
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(W), np.asarray(b)
        with transaction(sessions) as session:
            session.add(TrainedModel(job_id=job_id, weights=npz_bytes(**arrays), meta=meta))

    return store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def backend_app(request, settings):  # type: ignore[no-untyped-def]
    """``(app, auth headers)`` on SQLite and on a fresh migrated PostgreSQL database."""
    from service.app import create_app
    from service.db import make_engine, make_sessionmaker
    from service.migrate import upgrade
    from service.tenants import create_tenant_key

    server, name = None, None
    url = settings.database_url
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        name = server.create_database()
        url = server.sqlalchemy_url(name)
        upgrade(url)
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        key = create_tenant_key(session, "acme")
    engine.dispose()
    app = create_app({"settings": dataclasses.replace(settings, database_url=url)})
    yield app, {"Authorization": f"Bearer {key}"}
    app.extensions["deltaflow"].engine.dispose()
    if server is not None:
        server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_sessions(request, sessions):  # type: ignore[no-untyped-def]
    """A session factory on the test's SQLite database, or on a fresh migrated PostgreSQL one."""
    if request.param == "sqlite":
        yield sessions
        return
    from service.db import make_engine, make_sessionmaker
    from service.migrate import upgrade

    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    url = server.sqlalchemy_url(name)
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()
    server.drop_database(name)
