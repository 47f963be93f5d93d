"""The suite's Redis database claims (tests/support/servers.py): a run killed before its
teardown must not keep its databases from the next run for the lock's three hours."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.servers import REDIS_LOCK_PREFIX, Redis

pytestmark = pytest.mark.integration


def test_only_a_dead_local_runs_claim_is_taken_over(redis_server):
    locks = redis_server.client(0)
    number = redis_server.claim_database()
    key = f"{REDIS_LOCK_PREFIX}{number}"
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        host = socket.gethostname()
        mine = f"{host}:{os.getpid()}:next"
        for holder in (f"{host}:{os.getpid()}:live", f"elsewhere:{gone.pid}:remote"):
            locks.set(key, holder)
            assert not Redis._take_over(locks, key, mine)  # alive, or not ours to judge
            assert locks.get(key).decode() == holder
        locks.set(key, f"{host}:{gone.pid}:killed")
        assert Redis._take_over(locks, key, mine)
        assert locks.get(key).decode() == mine
        assert locks.ttl(key) > 0  # taken over with the lock's expiry, never forever
    finally:
        redis_server.release_database(number)
