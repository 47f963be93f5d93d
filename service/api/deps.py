"""Per-request access to settings, the database session and the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service import queue
from service.config import Settings
from service.dispatch import Sender

EXTENSION = "deltaflow"


@dataclass
class Context:
    """What create_app wires once per app and every request shares."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def context() -> Context:
    return current_app.extensions[EXTENSION]


def settings() -> Settings:
    return context().settings


def db() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = context().sessions()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()  # rolls back anything uncommitted


def sender() -> Sender:
    """Sends training messages with this app's settings (``service.dispatch``)."""
    return queue.sender(settings())


def tenant_id() -> str:
    """The authenticated tenant (set by the blueprint's auth hook)."""
    return g.tenant_id
