"""Concurrent first submits of the same new inline data store one dataset (issue 11).

Inline X and y sent with a job become a content-addressed dataset
(``service.datasets.store_inline``). Two submits of the same new data at once both found no
such dataset and both inserted one: two rows for one content. Now an inline dataset carries
``content_key`` (its bytes, task and classes), unique per tenant (migration 0013), and the
insert is ``ON CONFLICT DO NOTHING`` followed by a read of the winner: on PostgreSQL the
second insert waits for the first transaction, then finds its row.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sqlalchemy import func, select, text

from service import datasets
from service.config import Limits
from service.dataset_arrays import build_arrays
from service.db import make_sessionmaker, transaction
from service.models import Dataset, Tenant
from service.tenants import create_tenant_key

pytestmark = pytest.mark.integration

JOBS = "/api/v1/jobs"


def arrays(seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 3)).round(4).tolist()
    return build_arrays(X, ["a", "b", "c"] * 10, "classification", Limits(), loc=["dataset"])


def spec(seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "network": {
            "layers": [{"units": 4}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {
            "X": rng.normal(size=(40, 3)).round(4).tolist(),
            "y": [i % 2 for i in range(40)],
        },
        "training": {"epochs": 1},
    }


@pytest.fixture
def pg(postgres_server):  # type: ignore[no-untyped-def]
    """A migrated PostgreSQL database's session factory and a tenant in it."""
    from service.db import make_engine
    from service.migrate import upgrade

    name = postgres_server.create_database()
    url = postgres_server.sqlalchemy_url(name)
    upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        create_tenant_key(session, "racer")
        tenant = session.scalar(select(Tenant.id).where(Tenant.name == "racer"))
    yield factory, tenant
    engine.dispose()
    postgres_server.drop_database(name)


def waiting_on_a_lock(factory) -> bool:  # type: ignore[no-untyped-def]
    with factory() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


def test_the_second_of_two_concurrent_first_stores_gets_the_first_ones_dataset(pg):
    factory, tenant = pg
    data = arrays()
    first = factory()
    mine = datasets.store_inline(first, tenant, data)  # inserted, not committed yet
    theirs: list[str] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with transaction(factory) as session:
                theirs.append(datasets.store_inline(session, tenant, data).id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    racer = threading.Thread(target=second)
    racer.start()
    while racer.is_alive() and not waiting_on_a_lock(factory):
        time.sleep(0.01)  # the second insert waits on the first one's uncommitted row
    assert racer.is_alive(), errors
    first.commit()
    first.close()
    racer.join(timeout=30)
    assert not errors, errors
    assert theirs == [mine.id]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1


def test_concurrent_submits_of_the_same_new_inline_data_share_one_dataset(backend_app):
    app, auth = backend_app
    body = spec()
    barrier = threading.Barrier(4)
    answers: list = []

    def submit() -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(client.post(JOBS, json=body, headers=auth))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 4, [a.get_json() for a in answers]
    ids = {a.get_json()["spec"]["dataset"]["id"] for a in answers}
    assert len(ids) == 1
    factory = make_sessionmaker(app.extensions["deltaflow"].engine)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1
