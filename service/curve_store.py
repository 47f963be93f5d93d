"""The stored curve of a job: the points a run writes and their stored levels — the write
side of ``service.curves`` (which reads them).

A point is the one declaration of ``schemas.records``; ``curve_points`` is keyed by
(job_id, epoch), so an epoch is stored once. ``curve_levels`` holds, per block of
``LEVEL_BASE ** level`` epochs (8, 64, … 32,768), the block's first and last stored epochs
and each number's minimum and maximum with their epochs, so a downsampled read summarizes
buckets without reading the points (``curves``, M4). The flush that inserts points
refreshes the blocks they fall in (bottom-up, each block from its children: one read and
one upsert; no read for a job's first points, whose blocks hold nothing else), and
``continue_from`` (a PBT exploit rewrites a trial's tail) drops and rebuilds the blocks
after the copied epoch.

Kernel code: no Flask, no Celery, no worker imports. Call it inside the run's fenced
transaction (``service.job_progress``, ``service.job_finish``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, delete, insert, literal, or_, select, union_all
from sqlalchemy.orm import Session

from service.db import dialect_insert, insert_built_once
from service.models import CurvePoint, curve_levels
from service.schemas.records import NUMERIC_FIELDS, POINT_FIELDS, point_values

# Stored levels: blocks of LEVEL_BASE ** level epochs, level 1..LEVELS (8 … 32,768).
LEVEL_BASE = 8
LEVELS = 5
STATS = ("min", "min_epoch", "max", "max_epoch")


def insert_points(
    session: Session, job_id: str, points: Sequence[dict[str, Any]], *, first: bool = False
) -> None:
    """Insert a run's points; an epoch already stored is skipped (ON CONFLICT DO NOTHING):
    a resumed run recomputes, bit for bit, the epochs after its checkpoint. ``first``: the
    job has no stored point yet (the caller knows: ``summaries.record`` inserted its first
    summary in this transaction), so its levels are computed from these points alone."""
    if not points:
        return
    rows = [{"job_id": job_id, **point_values(p, POINT_FIELDS)} for p in points]
    insert = dialect_insert(session)(CurvePoint.__table__)  # Core: no ORM bulk insert
    # executemany with one cached statement: a multi-VALUES literal would be compiled
    # afresh for every flush (it cost as much as training tiny nets).
    session.execute(insert.on_conflict_do_nothing(index_elements=["job_id", "epoch"]), rows)
    epochs = [int(p["epoch"]) for p in points]
    refresh_levels(session, job_id, min(epochs), max(epochs), points if first else None)


def insert_new_curves(
    session: Session, curves: Sequence[tuple[str, Sequence[dict[str, Any]]]]
) -> None:
    """``insert_points(..., first=True)`` for several jobs (id, points) whose curves are
    new (a group's finish): all their points in one statement, all their levels in one."""
    rows = [
        {"job_id": job_id, **point_values(p, POINT_FIELDS)}
        for job_id, points in curves
        for p in points
    ]
    if not rows:
        return
    insert = dialect_insert(session)(CurvePoint.__table__)
    session.execute(insert.on_conflict_do_nothing(index_elements=["job_id", "epoch"]), rows)
    levels: list[dict[str, Any]] = []
    for job_id, points in curves:
        levels += _level_rows(job_id, sorted(map(_unit, points), key=lambda u: u[0]), {})
    if levels:
        session.execute(insert_built_once(session, _levels_upsert), levels)


def continue_from(
    session: Session, job_id: str, parent_id: str, last: int, epoch: int
) -> dict[str, Any] | None:
    """A trial that took another's checkpoint at ``epoch`` (a PBT exploit) goes on from it
    with one point per epoch: its own points after ``epoch`` go, and if the parent was ahead
    (``epoch > last``, its own last epoch), the parent's points fill the epochs between.
    Returns the point at ``epoch``, the trial's metrics now."""
    session.execute(delete(CurvePoint).where(CurvePoint.job_id == job_id, CurvePoint.epoch > epoch))
    changed = min(last, epoch) + 1
    session.execute(
        delete(curve_levels).where(
            curve_levels.c.job_id == job_id, curve_levels.c.last_epoch >= changed
        )
    )
    if epoch > last:
        columns = [c.name for c in CurvePoint.__table__.columns if c.name != "job_id"]
        copied = select(literal(job_id), *(getattr(CurvePoint, c) for c in columns)).where(
            CurvePoint.job_id == parent_id, CurvePoint.epoch > last, CurvePoint.epoch <= epoch
        )
        session.execute(insert(CurvePoint).from_select(["job_id", *columns], copied))
    refresh_levels(session, job_id, changed, max(changed, epoch))
    row = session.scalar(
        select(CurvePoint).where(CurvePoint.job_id == job_id, CurvePoint.epoch == epoch)
    )
    return None if row is None else point_values(row)


# --- stored levels -------------------------------------------------------------------------

# A summary ("unit") of consecutive epochs, as a list: [first, last] then, per number in
# ``fields`` order, [min, min_epoch, max, max_epoch] (None where the number is missing).
Unit = list[Any]


def absorb(into: Unit, unit: Unit, nfields: int) -> None:
    """Merge ``unit`` (later epochs) into ``into``; on a tie the earlier epoch stays."""
    into[1] = unit[1]
    for i in range(2, 2 + 4 * nfields, 4):
        low = unit[i]
        if low is not None:
            if into[i] is None or low < into[i]:
                into[i], into[i + 1] = low, unit[i + 1]
            if into[i + 2] is None or unit[i + 2] > into[i + 2]:
                into[i + 2], into[i + 3] = unit[i + 2], unit[i + 3]


def stat_columns(fields: Sequence[str]) -> list[Any]:
    return [curve_levels.c[f"{name}_{stat}"] for name in fields for stat in STATS]


def point_stats(fields: Sequence[str]) -> list[Any]:
    """A point's columns as a unit of one epoch: (value, epoch, value, epoch) per number,
    the epochs null where the value is."""
    out: list[Any] = []
    for name in fields:
        value = getattr(CurvePoint, name)
        at = case((value.is_not(None), CurvePoint.epoch), else_=None)
        out += [value, at, value, at]
    return out


def refresh_levels(
    session: Session,
    job_id: str,
    lo: int,
    hi: int,
    only: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Recompute every stored block that holds an epoch in [lo, hi], each from its children
    (points for level 1, blocks of the level below for the others): one read, one upsert.
    Blocks only grow while a run appends; ``continue_from`` deletes the ones it rewrites.
    ``only``: the job's only points (nothing else is stored), so the read is skipped."""
    if only is not None:
        _upsert_levels(session, job_id, sorted(map(_unit, only), key=lambda u: u[0]), {})
        return
    size = LEVEL_BASE
    level, block = curve_levels.c.level, curve_levels.c.block
    points = (
        select(literal(0), CurvePoint.epoch, CurvePoint.epoch, CurvePoint.epoch)
        .add_columns(*point_stats(NUMERIC_FIELDS))
        .where(
            CurvePoint.job_id == job_id,
            CurvePoint.epoch.between(lo // size * size, (hi // size + 1) * size - 1),
        )
    )
    siblings = [
        and_(
            level == k,
            block.between(
                lo // LEVEL_BASE ** (k + 1) * LEVEL_BASE,
                (hi // LEVEL_BASE ** (k + 1) + 1) * LEVEL_BASE - 1,
            ),
        )
        for k in range(1, LEVELS)
    ]
    blocks = (
        select(level, block, curve_levels.c.first_epoch, curve_levels.c.last_epoch)
        .add_columns(*stat_columns(NUMERIC_FIELDS))
        .where(curve_levels.c.job_id == job_id, or_(*siblings))
    )
    stored: dict[int, dict[int, Unit]] = defaultdict(dict)
    children: list[Unit] = []
    for row in session.connection().execute(union_all(points, blocks)).all():  # one read
        if row[0] == 0:
            children.append(list(row[2:]))
        else:
            stored[row[0]][row[1]] = list(row[2:])
    children.sort(key=lambda unit: unit[0])
    _upsert_levels(session, job_id, children, stored)


def _unit(point: dict[str, Any]) -> Unit:
    """A point (as a run flushes it) as a unit of one epoch, as ``point_stats`` reads it."""
    epoch = int(point["epoch"])
    unit: Unit = [epoch, epoch]
    for name in NUMERIC_FIELDS:
        value = point.get(name)
        if value is None:
            unit += [None, None, None, None]
        else:
            unit += [float(value), epoch, float(value), epoch]
    return unit


def _upsert_levels(
    session: Session, job_id: str, children: list[Unit], stored: dict[int, dict[int, Unit]]
) -> None:
    """Every level's blocks over ``children`` (level-1 units in epoch order), merged with
    the ``stored`` blocks of each level they belong beside; one upsert."""
    rows = _level_rows(job_id, children, stored)
    if rows:
        session.execute(insert_built_once(session, _levels_upsert), rows)


def _level_rows(
    job_id: str, children: list[Unit], stored: dict[int, dict[int, Unit]]
) -> list[dict[str, Any]]:
    """``_upsert_levels``' rows."""
    nfields = len(NUMERIC_FIELDS)
    rows: list[dict[str, Any]] = []
    names = _LEVEL_NAMES
    for k in range(1, LEVELS + 1):
        size = LEVEL_BASE**k
        computed: dict[int, Unit] = {}
        for child in children:  # in epoch order
            index = child[0] // size
            if index in computed:
                absorb(computed[index], child, nfields)
            else:
                computed[index] = list(child)
        rows += [
            {"job_id": job_id, "level": k, "block": index, **dict(zip(names, unit, strict=True))}
            for index, unit in computed.items()
        ]
        below = stored.get(k, {})
        below.update(computed)
        children = [below[index] for index in sorted(below)]
    return rows


_LEVEL_NAMES = ["first_epoch", "last_epoch", *(c.name for c in stat_columns(NUMERIC_FIELDS))]


def _levels_upsert(make: Any) -> Any:
    """The levels' upsert (``insert_built_once``: building it, with a column per stat,
    cost a noticeable part of a tiny job's flush)."""
    insert = make(curve_levels)
    return insert.on_conflict_do_update(
        index_elements=["job_id", "level", "block"],
        set_={name: insert.excluded[name] for name in _LEVEL_NAMES},
    )
