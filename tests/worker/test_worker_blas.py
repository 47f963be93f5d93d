"""Each pool child limits BLAS to max(1, cores // children) threads, as BLAS reports it."""

from __future__ import annotations

import re

import pytest

from tests.support.jobs import wait_for
from worker.blas import threads_for

pytestmark = pytest.mark.integration

LINE = re.compile(r"blas_threads=(\d+) wanted=(\d+) processes=(\d+)")


# One child: it must get every core (the environment says 1, so threadpoolctl raised it);
# with N children each logs its share the same way (processes=N).
@pytest.mark.parametrize("children", [1])
def test_pool_children_share_the_cores(embedded_backend, worker_process, children):
    worker = worker_process(embedded_backend, concurrency=children)
    wait_for(lambda: len(LINE.findall(worker.log())) >= children, what="every child's BLAS line")
    seen = LINE.findall(worker.log())[-children:]
    expected = threads_for(children)
    # What the BLAS library itself reports after the limit, in each child.
    assert [int(actual) for actual, _wanted, _n in seen] == [expected] * children
    assert {int(n) for _a, _w, n in seen} == {children}


def test_the_share_is_at_least_one_thread():
    assert threads_for(4, cores=2) == 1
    assert threads_for(2, cores=8) == 4
    assert threads_for(1, cores=3) == 3
