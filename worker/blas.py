"""BLAS threads per pool child: max(1, cores // processes), set with threadpoolctl.

A worker with N pool children on a C-core host runs up to N jobs at once; if each job's
GEMMs used all C cores (OpenBLAS's default), N x C threads would fight over C cores.
Each child therefore limits its BLAS pool to max(1, C // N) threads when it starts, and
logs the number the BLAS library reports back (``blas_threads=``), so it is measured,
not assumed. ``deltaflow worker`` also sets the environment variables before numpy loads
(``service.cli.blas_threads``); this works for a bare ``celery worker`` too.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

CONCURRENCY_ENV = "DELTAFLOW_WORKER_PROCESSES"  # set by the main process for its children


def threads_for(processes: int, cores: int | None = None) -> int:
    cores = cores or len(os.sched_getaffinity(0)) or os.cpu_count() or 1
    return max(1, cores // max(1, processes))


def remember_processes(processes: int | None) -> None:
    """In the main process, before the pool forks: how many children share the cores."""
    count = processes or os.cpu_count() or 1  # Celery's default concurrency is the cores
    os.environ[CONCURRENCY_ENV] = str(count)


def limit_in_child() -> int:
    """In a pool child: limit BLAS to its share of the cores; returns what BLAS reports."""
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl controls)
    from threadpoolctl import threadpool_info, threadpool_limits

    processes = int(os.environ.get(CONCURRENCY_ENV) or 1)
    wanted = threads_for(processes)
    threadpool_limits(limits=wanted, user_api="blas")
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    actual = min((int(p["num_threads"]) for p in pools), default=0)
    log.info(
        "blas_threads=%d wanted=%d processes=%d cores=%d libraries=%s",
        actual,
        wanted,
        processes,
        len(os.sched_getaffinity(0)),
        ",".join(sorted({str(p.get("internal_api")) for p in pools})) or "none",
    )
    return actual
