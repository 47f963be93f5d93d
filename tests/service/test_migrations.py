"""Migrations: one head, ``upgrade head`` on empty SQLite and PostgreSQL databases, and
models that match the migrations (autogenerate finds nothing to do)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from service.db import make_engine
from service.migrate import alembic_config, upgrade
from service.models import Base
from tests.support.fixtures import postgres_server  # noqa: F401  (a session fixture)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'empty.sqlite3'}"


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:  # noqa: F811
    name = postgres_server.create_database()
    yield postgres_server.sqlalchemy_url(name)
    postgres_server.drop_database(name)


def test_there_is_exactly_one_head():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def assert_upgrade_creates_the_schema_and_matches_the_models(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    # ``alembic check`` is the same question asked through the command line API.
    command.check(alembic_config(url))


def test_upgrade_head_on_an_empty_sqlite_database(sqlite_url):
    assert_upgrade_creates_the_schema_and_matches_the_models(sqlite_url)


@pytest.mark.integration
def test_upgrade_head_on_an_empty_postgresql_database(postgres_url):
    assert_upgrade_creates_the_schema_and_matches_the_models(postgres_url)


def test_downgrade_to_base_and_up_again(sqlite_url):
    upgrade(sqlite_url)
    command.downgrade(alembic_config(sqlite_url), "base")
    engine = make_engine(sqlite_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(sqlite_url)
