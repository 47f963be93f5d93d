"""The in-process cache in front of API-key authentication, and the seldom last-used write.

Every API request names its key; looking it up in the database each time was one of the
round trips a dashboard poll paid for. ``KeyCache`` keeps what a key hash maps to (its
identity, or "no such key") for ``ttl`` seconds, per API process:

- a **revoked** key goes on working for at most ``ttl`` seconds in a process that saw it
  just before (``DELTAFLOW_AUTH_CACHE_SECONDS``, default 5; 0 turns the cache off);
- an **expired** key is refused on time: expiry is compared with the clock on every
  request, whatever the cache holds;
- **last used** is written at most once per ``touch_every`` seconds (a minute) per key and
  process, in its own short transaction, never as part of the request's.

Kernel code: no Flask. The cache is bounded (oldest entries go first), so a flood of
made-up keys costs lookups but never memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from service import tenants
from service.tenants import Identity
from service.timeutil import utcnow

log = logging.getLogger(__name__)

TOUCH_EVERY_SECONDS = 60.0
MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(
        self,
        engine: Engine,
        ttl: float,
        *,
        touch_every: float = TOUCH_EVERY_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.touch_every = touch_every
        self.max_entries = max_entries
        self.clock = clock
        self.wall_clock = wall_clock
        self._entries: dict[str, tuple[float, Identity | None]] = {}  # hash -> (until, identity)
        self._touched: dict[str, float] = {}  # key id -> when this process last wrote last_used
        self._lock = threading.Lock()

    def authenticate(self, key: str | None) -> Identity | None:
        """The identity of a valid key, else None (missing, unknown, revoked, expired)."""
        if not tenants.well_formed(key):
            return None
        digest = tenants.hash_key(str(key))
        now = self.clock()
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > now:
            identity = entry[1]
        else:
            with self.engine.connect() as connection:  # not the request's session: held briefly
                identity = tenants.find_key(connection, digest)
            if self.ttl > 0:
                self._store(digest, now + self.ttl, identity)
        if identity is None:
            return None
        wall = self.wall_clock()
        if identity.expired(wall):
            return None
        self._touch(identity, now, wall)
        return identity

    def forget(self) -> None:
        """Drop every cached answer (the next request of each key reads the database)."""
        with self._lock:
            self._entries.clear()

    def _store(self, digest: str, until: float, identity: Identity | None) -> None:
        with self._lock:
            self._entries[digest] = (until, identity)
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    def _touch(self, identity: Identity, now: float, wall: datetime) -> None:
        last = self._touched.get(identity.key_id)
        if last is not None and now - last < self.touch_every:
            return
        with self._lock:  # one thread writes; the others see it claimed and go on
            last = self._touched.get(identity.key_id)
            if last is not None and now - last < self.touch_every:
                return
            self._touched[identity.key_id] = now
            if len(self._touched) > self.max_entries:
                self._touched.clear()
        try:
            with self.engine.begin() as connection:
                tenants.touch_key(connection, identity.key_id, wall)
        except SQLAlchemyError as exc:  # a missed last-used time must never fail a request
            log.warning("could not record the last use of key %s: %s", identity.prefix, exc)
