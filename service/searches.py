"""Growing a TPE search: a new trial as an earlier one finishes, drawn from every result so far.

A TPE batch keeps at most ``max_concurrent`` unfinished trials and makes ``trials`` in all;
``batches.growing`` is true until the last is created (or the batch is cancelled). Trial
``n`` is ``tpe.suggest`` over the finished trials' results — each one's best value of the
search's metric over its curve, ``inf`` for one that ended without a value (e.g. diverged)
— with the unfinished trials pending (the constant liar), drawn with
``numpy.random.default_rng([seed, n])``. The first ``min(max_concurrent, trials)`` are made
with the batch (``first_trials``), from no results: random draws.

``grow`` starts its transaction by locking the batch row (an UPDATE), so two runs ending
at once, or many reapers, create each trial exactly once; the unique (batch_id, batch_index)
is the backstop. The run that ends a trial calls it; every reaper pass calls ``grow_open``
for the batches still growing, so a worker killed between a finish and its ``grow`` (or an
API restarted in the middle) delays a trial, never loses or duplicates one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service import job_writes, tpe
from service.config import Limits
from service.db import transaction
from service.jobs import create_job
from service.models import Batch, CurvePoint, Job
from service.problems import Invalid
from service.schedulers.base import sign
from service.schemas.names import FINISHED, Queue
from service.sweeps import apply_params

log = logging.getLogger(__name__)


def draw(search: Mapping[str, Any], n: int, observed: Sequence[tuple[dict, float]],
         pending: Sequence[dict]) -> dict[str, Any]:  # fmt: skip
    """Trial ``n``'s params (``search`` as stored: seed chosen, mode resolved)."""
    return tpe.suggest(
        search["space"],
        observed,
        pending,
        np.random.default_rng([int(search["seed"]), n]),
        startup=int(search["startup_trials"]),
        candidates=int(search["candidates"]),
    )


def origin(search: Mapping[str, Any], n: int, observed: int, pending: int) -> dict[str, Any]:
    return {"kind": "tpe", "trial": n, "seed": search["seed"], "observed": observed,
            "pending": pending}  # fmt: skip


def first_trials(search: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (params, origin) of the trials made with the batch: before any result."""
    count = min(int(search["max_concurrent"]), int(search["trials"]))
    made: list[dict[str, Any]] = []
    for n in range(count):
        made.append(draw(search, n, [], made))
    return [(params, origin(search, n, 0, n)) for n, params in enumerate(made)]


def results(session: Session, job_ids: Sequence[str], metric: str, mode: str) -> dict[str, float]:
    """Each trial's best value of ``metric`` (signed: lower is better); ``inf`` if none."""
    column = getattr(CurvePoint, metric)
    extreme = func.min if mode == "min" else func.max
    rows = session.execute(
        select(CurvePoint.job_id, extreme(column))
        .where(CurvePoint.job_id.in_(list(job_ids)), column.is_not(None))
        .group_by(CurvePoint.job_id)
    )
    best = {job_id: sign(mode) * value for job_id, value in rows if value is not None}
    return {job_id: best.get(job_id, math.inf) for job_id in job_ids}


def grow(factory: sessionmaker[Session], batch_id: str, limits: Limits) -> list[tuple[str, str]]:
    """Create the trials the batch has room for; returns (job_id, queue) to dispatch."""
    created: list[tuple[str, str]] = []
    try:
        with transaction(factory) as session:
            locked = session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.growing.is_(True))
                .values(growing=True)
                .execution_options(synchronize_session=False)
            )
            if not job_writes.rowcount(locked):
                return []
            batch = session.get(Batch, batch_id)
            assert batch is not None
            created = _create_trials(session, batch, limits)
    except IntegrityError:  # another creator won the index: it made the trial
        log.info("batch=%s: a trial was created concurrently", batch_id)
        return []
    return created


def _create_trials(session: Session, batch: Batch, limits: Limits) -> list[tuple[str, str]]:
    search = batch.spec["search"]
    rows = session.execute(
        select(Job.id, Job.batch_index, Job.status, Job.params)
        .where(Job.batch_id == batch.id)
        .order_by(Job.batch_index)
    ).all()
    ended = {s.value for s in FINISHED}
    done = [r for r in rows if r.status in ended]
    pending = [dict(r.params or {}) for r in rows if r.status not in ended]
    values = results(session, [r.id for r in done], search["metric"], search["mode"])
    observed = [(dict(r.params or {}), values[r.id]) for r in done]
    n, created = len(rows), list[tuple[str, str]]()
    while n < int(search["trials"]) and len(pending) < int(search["max_concurrent"]):
        params = draw(search, n, observed, pending)
        try:
            job = create_job(
                session,
                batch.tenant_id,
                apply_params(batch.spec["base"], params, "search"),
                name=f"{batch.name} #{n}",
                batch_id=batch.id,
                queue=Queue.batch.value,
                params=params,
                limits=limits,
                loc=("body", "search"),
            )
        except Invalid as err:  # a draw the job spec refuses: the search ends here
            log.warning("batch=%s trial %d is invalid (%s); no more trials", batch.id, n, err)
            batch.growing = False
            return created
        job.batch_index = n
        job.origin = origin(search, n, len(observed), len(pending))
        created.append((job.id, Queue.batch.value))
        pending.append(params)
        n += 1
    session.flush()
    if n >= int(search["trials"]):
        batch.growing = False
    return created


def grow_open(factory: sessionmaker[Session], limits: Limits) -> list[tuple[str, str]]:
    """``grow`` every batch still growing (each reaper pass)."""
    with factory() as session:
        ids = session.scalars(select(Batch.id).where(Batch.growing.is_(True))).all()
    created: list[tuple[str, str]] = []
    for batch_id in ids:
        created += grow(factory, batch_id, limits)
    return created
