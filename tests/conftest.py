"""Shared fixtures for every suite: a migrated temporary SQLite database, the app, keys.

Kept generic on purpose; suites add their own fixtures in their own conftest files.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.migrate import upgrade
from service.tenants import create_tenant_key

# Make ``tests.support`` importable from every suite (tests/ is not a package).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at ``head``, migrated once; tests get copies of the file."""
    path = tmp_path_factory.mktemp("template") / "deltaflow.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, migrated_sqlite_template: Path) -> Settings:
    """Settings for one test: its own migrated SQLite file and filesystem broker folder.

    The environment is ignored (``env={}``) so a developer's DELTAFLOW_* never leaks in.
    """
    database = tmp_path / "deltaflow.sqlite3"
    shutil.copyfile(migrated_sqlite_template, database)
    return Settings.from_env(env={}, data_dir=tmp_path, database_url=f"sqlite:///{database}")


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory on the test database (the engine is disposed afterwards)."""
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from service.app import create_app

    app = create_app({"settings": settings, "TESTING": True})
    yield app
    app.extensions["deltaflow"].engine.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def make_key(sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    """``make_key(tenant_name) -> plaintext API key`` (creating the tenant if needed)."""

    def make(tenant: str = "acme") -> str:
        with transaction(sessions) as session:
            return create_tenant_key(session, tenant)

    return make


@pytest.fixture
def auth(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Authorization headers of tenant ``acme``."""
    return {"Authorization": f"Bearer {make_key('acme')}"}
