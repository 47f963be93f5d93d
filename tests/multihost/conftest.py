"""Fixtures of the multi-host suite: one namespaced cluster per module, and the results table.

Building hosts needs root and iproute2. Without them the tests are skipped loudly — and
fail under ``CI=true`` (CI runs as root), like every test that needs a service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.fixtures import unavailable
from tests.support.netns import NetnsUnavailable, check_support

from .cluster import Cluster
from .results import Row, markdown

_ROWS: list[Row] = []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        check_support()
    except NetnsUnavailable as exc:
        unavailable(f"multi-host tests need network namespaces: {exc}")
    cluster = Cluster(tmp_path_factory.mktemp("multihost"))
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def record_row() -> Callable[[Row], None]:
    """Add a row to the table printed at the end of the session (docs/scaling.md)."""
    return _ROWS.append


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _ROWS:
        return
    terminalreporter.section("multi-host table (docs/scaling.md)")
    for line in markdown(_ROWS).splitlines():
        terminalreporter.write_line(line)
