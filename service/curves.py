"""Curves: what the API reads — the curve of one job, or of every job of a batch at once.
A run's writes (points and their stored levels) are ``service.curve_store``.

A point is the one declaration of ``schemas.records``. Reads are primary-key range scans
(``curve_points`` is keyed by (job_id, epoch)). Kernel code: no Flask, no Celery, no
worker imports.

**Downsampling (M4).** A curve asked for with ``max_points`` that has more epochs in its
range is cut into buckets of consecutive epochs, and each bucket keeps its first and last
epoch and, for each requested number, the epochs of its minimum and maximum. So the range's
first and last epochs and each field's extremes are always answered, and a chart drawn
from the answer shows every spike. A bucket yields at most ``2 + 2 × fields`` points, so
``max_points // (2 + 2 × fields)`` buckets keep the answer under the cap.

**Stored levels.** The buckets are summarized without reading the points: ``curve_levels``
(written with the points, ``service.curve_store``) holds, per block of ``LEVEL_BASE **
level`` epochs (8, 64, … 32,768), the block's first and last stored epochs and each
number's minimum and maximum with their epochs. A downsampled read covers its range with
the coarsest blocks no wider than a bucket (and finer ones, then points, at the ragged
ends), merges them into buckets, then reads only the chosen points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.config import Limits
from service.cursors import epochs_cursor, read_epochs_cursor
from service.curve_store import LEVEL_BASE, LEVELS, Unit, absorb, point_stats, stat_columns
from service.models import Batch, CurvePoint, Job, curve_levels
from service.problems import Invalid
from service.schemas.names import FINISHED
from service.schemas.records import (
    CURVE_FIELDS,
    DEFAULT_CURVE_FIELDS,
    NUMERIC_FIELDS,
)

# Terms of one OR-chain (SQLite parses it as a tree of that depth) and bound parameters
# per statement: batch reads are split into statements of at most these.
OR_TERMS = 100
BOUND_PARAMETERS = 5000
BLOCK_SLACK = 1.5
# A job's ETA uses the median wall time of this many most recent epochs.
ETA_WINDOW = 50


def _cover(lo: int, hi: int, top: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """[lo, hi] as whole blocks of level ``top`` and, at the ragged ends, of the levels
    below, down to single epochs: ((level, first block, last block) …, (lo, hi) of points …)."""
    blocks: list[tuple[int, int, int]] = []
    points: list[tuple[int, int]] = []
    todo = [(lo, hi, top)]
    while todo:
        a, b, k = todo.pop()
        if a > b:
            continue
        if k == 0:
            points.append((a, b))
            continue
        size = LEVEL_BASE**k
        first, last = -(-a // size), (b + 1) // size - 1
        if first > last:
            todo.append((a, b, k - 1))
            continue
        blocks.append((k, first, last))
        todo += [(a, first * size - 1, k - 1), ((last + 1) * size, b, k - 1)]
    return blocks, points


@dataclass(frozen=True)
class Window:
    """The epochs [lo, hi] of one job to answer, at most ``cap`` points of them."""

    lo: int
    hi: int
    cap: int

    @property
    def span(self) -> int:
        return self.hi - self.lo + 1

    def buckets(self, nfields: int) -> int:
        return max(1, self.cap // (2 + 2 * nfields))


def _chunks(items: Iterable[Any], cost: Any) -> Iterator[list[Any]]:
    """Split ``items`` into statements of at most OR_TERMS terms and BOUND_PARAMETERS."""
    chunk: list[Any] = []
    terms = params = 0
    for item in items:
        t, p = cost(item)
        if chunk and (terms + t > OR_TERMS or params + p > BOUND_PARAMETERS):
            yield chunk
            chunk, terms, params = [], 0, 0
        chunk.append(item)
        terms, params = terms + t, params + p
    if chunk:
        yield chunk


def _m4_epochs(
    db: Session | Connection, windows: dict[str, Window], fields: Sequence[str]
) -> dict[str, list[int]]:
    """For each job, the epochs M4 keeps of its window, from stored levels and at most a
    few points at the ragged ends of each window."""
    numeric = [f for f in fields if f in NUMERIC_FIELDS]
    nfields = len(numeric)
    plans: dict[str, tuple[list[tuple[int, int, int]], list[tuple[int, int]]]] = {}
    for job_id, window in windows.items():
        width = window.span / window.buckets(nfields)
        # The coarsest blocks up to BLOCK_SLACK x a bucket's width: a bucket then holds a
        # few blocks (or a block spans at most one bucket boundary, and the answer has a
        # little fewer, wider buckets) — 8x fewer rows than blocks strictly within a bucket
        # where the width falls just short of the next level (a 1000-epoch job at 200 points).
        top = 0
        while top < LEVELS and LEVEL_BASE ** (top + 1) <= BLOCK_SLACK * width:
            top += 1
        plans[job_id] = _cover(window.lo, window.hi, top)
    if _on_postgresql(db):
        units = _units_postgresql(_connection(db), plans, numeric)
    else:
        units = _units(_connection(db), plans, numeric)
    chosen: dict[str, list[int]] = {}
    for job_id, window in windows.items():
        buckets, span = window.buckets(nfields), window.span
        keep: set[int] = set()
        current: Unit | None = None
        at = -1
        for unit in sorted(units[job_id], key=lambda u: u[0]):
            index = (unit[0] - window.lo) * buckets // span
            if current is not None and index == at:
                absorb(current, unit, nfields)
                continue
            if current is not None:
                keep.update(e for e in current[:2] + current[3::2] if e is not None)
            current, at = list(unit), index
        if current is not None:
            keep.update(e for e in current[:2] + current[3::2] if e is not None)
            if len(keep) > window.cap:
                # Only with one bucket (a cap under 2 + 2 x fields): the range's first and
                # last epochs, then the fields' extremes in the order asked, up to the cap.
                ranked = dict.fromkeys(e for e in current[:2] + current[3::2] if e is not None)
                keep = set(list(ranked)[: window.cap])
        chosen[job_id] = sorted(keep)
    return chosen


def _units(
    connection: Any,
    plans: dict[str, tuple[list[tuple[int, int, int]], list[tuple[int, int]]]],
    numeric: Sequence[str],
) -> dict[str, list[Unit]]:
    """The stored blocks and the points at the ragged ends of each plan, all as units (a
    point is a unit of one epoch): one statement per chunk of OR-ed terms (SQLite)."""
    level, block, epoch = curve_levels.c.level, curve_levels.c.block, CurvePoint.epoch
    terms = [(job_id, piece) for job_id, plan in plans.items() for piece in (*plan[0], *plan[1])]
    units: dict[str, list[Unit]] = defaultdict(list)
    for chunk in _chunks(terms, lambda _: (1, 4)):
        blocks = [
            and_(curve_levels.c.job_id == job_id, level == piece[0], block.between(*piece[1:]))
            for job_id, piece in chunk
            if len(piece) == 3
        ]
        spans = [
            and_(CurvePoint.job_id == job_id, epoch.between(*piece))
            for job_id, piece in chunk
            if len(piece) == 2
        ]
        parts = []
        if blocks:
            parts.append(
                select(curve_levels.c.job_id, curve_levels.c.first_epoch, curve_levels.c.last_epoch)
                .add_columns(*stat_columns(numeric))
                .where(or_(*blocks))
            )
        if spans:
            parts.append(
                select(CurvePoint.job_id, epoch, epoch)
                .add_columns(*point_stats(numeric))
                .where(or_(*spans))
            )
        query = parts[0] if len(parts) == 1 else union_all(*parts)
        for row in connection.execute(query).all():  # fetchall: not a fetch per row
            units[row[0]].append(list(row[1:]))
    return units


def _array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of ids (hex) or integers: psycopg dumps a list element by
    element, which cost more than the statement it was for."""
    return "{" + ",".join(str(v) for v in values) + "}"


def _units_postgresql(
    connection: Any,
    plans: dict[str, tuple[list[tuple[int, int, int]], list[tuple[int, int]]]],
    numeric: Sequence[str],
) -> dict[str, list[Unit]]:
    """``_units`` on PostgreSQL: every job's blocks and ragged ends in one statement of one
    text whatever the plans (psycopg prepares it once; building a SQLAlchemy OR-chain per
    request cost ~0.7 ms per job of a batch), each piece a fenced LATERAL index range scan."""
    blocks = [(job_id, *piece) for job_id, plan in plans.items() for piece in plan[0]]
    spans = [(job_id, *piece) for job_id, plan in plans.items() for piece in plan[1]]
    stats = "".join(f", l.{c.name}" for c in stat_columns(numeric))
    needed = ", ".join(["epoch", *(curve_points_column(f) for f in numeric)])
    values = ""
    for name in map(curve_points_column, numeric):
        at = f"CASE WHEN p.{name} IS NULL THEN NULL ELSE p.epoch END"
        values += f", p.{name}, {at}, p.{name}, {at}"
    query = text(  # values are bound; the names come from the tables' declarations
        f"SELECT w.job_id, l.first_epoch, l.last_epoch{stats} FROM unnest("  # noqa: S608
        "CAST(:b_job AS text[]), CAST(:b_level AS integer[]), CAST(:b_lo AS integer[]),"
        " CAST(:b_hi AS integer[])) AS w(job_id, level, lo, hi) CROSS JOIN LATERAL ("
        "SELECT * FROM curve_levels c WHERE c.job_id = w.job_id AND c.level = w.level"
        " AND c.block BETWEEN w.lo AND w.hi OFFSET 0) AS l"
        f" UNION ALL SELECT s.job_id, p.epoch, p.epoch{values} FROM unnest("
        "CAST(:s_job AS text[]), CAST(:s_lo AS integer[]), CAST(:s_hi AS integer[]))"
        f" AS s(job_id, lo, hi) CROSS JOIN LATERAL (SELECT {needed} FROM curve_points c"
        " WHERE c.job_id = s.job_id AND c.epoch BETWEEN s.lo AND s.hi OFFSET 0) AS p"
    )
    params = {
        "b_job": _array(b[0] for b in blocks),
        "b_level": _array(b[1] for b in blocks),
        "b_lo": _array(b[2] for b in blocks),
        "b_hi": _array(b[3] for b in blocks),
        "s_job": _array(s[0] for s in spans),
        "s_lo": _array(s[1] for s in spans),
        "s_hi": _array(s[2] for s in spans),
    }
    units: dict[str, list[Unit]] = defaultdict(list)
    for row in connection.execute(query, params).all():
        units[row[0]].append(list(row[1:]))
    return units


def curve_points_column(field: str) -> str:
    """A point field's column name, from the table's declaration (never from input)."""
    return str(CurvePoint.__table__.c[field].name)


# --- reading curves ------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveAsk:
    """What a curve read asks for: the range, the cap, the fields and the layout."""

    since: int = 0
    from_epoch: int | None = None
    to_epoch: int | None = None
    max_points: int | None = None
    fields: tuple[str, ...] = DEFAULT_CURVE_FIELDS
    columns: bool = False

    def window(self, seen: int, last: int, cap: int) -> Window:
        lo = max(seen + 1, self.from_epoch or 1)
        hi = last if self.to_epoch is None else min(last, self.to_epoch)
        return Window(lo, hi, cap)

    def tag(self) -> str:
        """What distinguishes this answer's ETag from another ask's of the same job."""
        parts = (self.since, self.from_epoch, self.to_epoch, self.max_points)
        text = "-".join("" if p is None else str(p) for p in parts)
        names = ".".join(str(CURVE_FIELDS.index(f)) for f in self.fields)
        return f"{text}-{names}{'-c' if self.columns else ''}"


def parse_fields(text: str | None, loc: tuple[str, ...] = ("query", "fields")) -> tuple[str, ...]:
    """``fields=`` as a comma list, in the point's order; the default is the four losses and
    accuracies (gradient norms and activation statistics only when named)."""
    if text is None or not text.strip():
        return DEFAULT_CURVE_FIELDS
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(CURVE_FIELDS) - {"epoch"})
    if unknown:
        raise Invalid.at(
            loc, f"unknown field {unknown[0]!r}: choose from {', '.join(CURVE_FIELDS)}"
        )
    return tuple(f for f in CURVE_FIELDS if f in names)


def _read(
    db: Session | Connection,
    ranges: dict[str, tuple[int, int, int | None]],
    picked: dict[str, list[int]],
    fields: Sequence[str],
) -> dict[str, list[tuple[Any, ...]]]:
    """Rows (epoch, *fields) in epoch order: of each ``ranges`` job its epochs [lo, hi]
    (at most ``limit`` of them), of each ``picked`` job the listed epochs."""
    columns = [CurvePoint.job_id, CurvePoint.epoch, *(getattr(CurvePoint, f) for f in fields)]
    connection = _connection(db)
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for job_id, (lo, hi, limit) in ranges.items():
        if limit is not None:  # a page: one statement of its own, with its LIMIT
            query = (
                select(*columns[1:])
                .where(CurvePoint.job_id == job_id, CurvePoint.epoch.between(lo, hi))
                .order_by(CurvePoint.epoch)
                .limit(limit)
            )
            out[job_id] = [tuple(row) for row in connection.execute(query).all()]
    terms: list[tuple[str, ColumnElement[bool], int]] = [
        (job_id, CurvePoint.epoch.between(lo, hi), 3)
        for job_id, (lo, hi, limit) in ranges.items()
        if limit is None
    ]
    if _on_postgresql(db):
        _read_picked_postgresql(connection, picked, fields, out)
    else:
        terms += [
            (job_id, CurvePoint.epoch.in_(epochs), len(epochs) + 1)
            for job_id, epochs in picked.items()
            if epochs
        ]
    for chunk in _chunks(terms, lambda term: (1, term[2])):
        query = select(*columns).where(
            or_(*(and_(CurvePoint.job_id == job_id, term) for job_id, term, _ in chunk))
        )
        for row in connection.execute(query.order_by(CurvePoint.job_id, CurvePoint.epoch)).all():
            out[row[0]].append(tuple(row[1:]))
    return out


def _read_picked_postgresql(
    connection: Any,
    picked: dict[str, list[int]],
    fields: Sequence[str],
    out: dict[str, list[tuple[Any, ...]]],
) -> None:
    """The chosen epochs of every job in one statement: one primary-key probe per epoch.

    ``epoch = ANY(array)`` or a join on ``unnest`` let the planner scan all of a job's
    points and filter them (it did, 8 ms for 264 of 10,000 points); the fenced LATERAL
    subquery (``OFFSET 0``) keeps it to index probes (1.4 ms)."""
    pairs = [(job_id, e) for job_id, epochs in picked.items() for e in epochs]
    if not pairs:
        return
    # Column names from the point's declaration only (parse_fields refuses any other).
    names = ", ".join(curve_points_column(n) for n in ("job_id", "epoch", *fields))
    query = text(  # values are bound; the names come from the table
        f"SELECT c.* FROM unnest(CAST(:job_ids AS text[]), CAST(:epochs AS integer[]))"  # noqa: S608
        f" AS w(job_id, epoch) CROSS JOIN LATERAL (SELECT {names} FROM curve_points p"
        " WHERE p.job_id = w.job_id AND p.epoch = w.epoch OFFSET 0) AS c"
        " ORDER BY c.job_id, c.epoch"
    )
    params = {"job_ids": _array(p[0] for p in pairs), "epochs": _array(p[1] for p in pairs)}
    for row in connection.execute(query, params).all():
        out[row[0]].append(tuple(row[1:]))


def _shape(rows: list[tuple[Any, ...]], fields: Sequence[str], columns: bool) -> dict[str, Any]:
    names = ("epoch", *fields)
    if columns:
        return {"columns": {name: [row[i] for row in rows] for i, name in enumerate(names)}}
    return {"points": [dict(zip(names, row, strict=True)) for row in rows]}


def _connection(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _on_postgresql(db: Session | Connection) -> bool:
    return _connection(db).dialect.name == "postgresql"


def job_curve(
    db: Session | Connection, job_id: str, status: str, last: int, ask: CurveAsk, limits: Limits
) -> dict[str, Any]:
    """The job's curve in the asked range (epochs after ``since``, within
    ``from_epoch``…``to_epoch``; ``last`` is the job's last stored epoch).

    With ``max_points`` the whole range comes in one answer, M4-downsampled when it holds
    more epochs than that. Without it, at most ``limits.curve_points`` points come and
    ``next_since`` tells the client where to continue.
    """
    cap = min(ask.max_points or limits.curve_points, limits.curve_points)
    window = ask.window(ask.since, last, cap)
    if window.span <= 0:
        rows: list[tuple[Any, ...]] = []
    elif ask.max_points and window.span > cap:
        picked = _m4_epochs(db, {job_id: window}, ask.fields)
        rows = _read(db, {}, picked, ask.fields)[job_id]
    else:
        page = None if ask.max_points else cap
        rows = _read(db, {job_id: (window.lo, window.hi, page)}, {}, ask.fields)[job_id]
    next_since = rows[-1][0] if rows else ask.since
    has_more = bool(rows) and next_since < window.hi
    return _curve(job_id, status, _shape(rows, ask.fields, ask.columns), next_since, has_more)


def curve_without_points(
    job_id: str, status: str, epoch: int, ask: CurveAsk
) -> dict[str, Any] | None:
    """The answer of a poll that asks only for epochs after the job's last stored one
    (``jobs.epoch``, written with the points it counts), built without reading a point;
    None when there may be points to read (then ``job_curve`` answers)."""
    if ask.since < epoch and (ask.to_epoch is None or ask.to_epoch > ask.since):
        return None
    return _curve(job_id, status, _shape([], ask.fields, ask.columns), ask.since, has_more=False)


def _curve(
    job_id: str, status: str, data: dict[str, Any], next_since: int, has_more: bool
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        **data,
        "next_since": next_since,
        "complete": status in FINISHED and not has_more,
    }


def batch_curves(
    session: Session, batch: Batch, cursor: str | None, ask: CurveAsk, limits: Limits
) -> dict[str, Any]:
    """Every job's curve points after the cursor (within ``from_epoch``…``to_epoch``).

    With ``max_points``, a hard cap per job: each job's unseen range comes whole in this
    answer, M4-downsampled past the cap (lowered so the answer holds at most
    ``limits.batch_curve_points`` points), and the cursor moves to each job's last epoch.
    Without it, ``limits.curve_points`` points in all are shared fairly: each job with new
    points gets up to ``limits.curve_points // jobs_with_new_points`` (at least one) of its
    oldest unseen epochs. ``truncated`` says some job has more already stored: ask again
    with ``next_cursor`` at once. ``complete`` says every job finished and every point was
    returned: stop.
    """
    rows = session.execute(
        select(Job.id, Job.batch_index, Job.status, Job.epoch)
        .where(Job.batch_id == batch.id)
        .order_by(Job.batch_index)
    ).all()
    size = max((row.batch_index for row in rows), default=-1) + 1
    seen = read_epochs_cursor(batch.id, cursor, size)
    windows = {row.id: ask.window(seen[row.batch_index], row.epoch, 0) for row in rows}
    pending = [row.id for row in rows if windows[row.id].span > 0]
    ranges: dict[str, tuple[int, int, int | None]] = {}
    downsampled: dict[str, Window] = {}
    if ask.max_points:
        cap = min(ask.max_points, max(2, limits.batch_curve_points // max(len(pending), 1)))
        for job_id in pending:
            window = Window(windows[job_id].lo, windows[job_id].hi, cap)
            if window.span > cap:
                downsampled[job_id] = window
            else:
                ranges[job_id] = (window.lo, window.hi, None)
    else:
        per_job = max(1, limits.curve_points // max(len(pending), 1))
        for job_id in pending:
            lo, hi = windows[job_id].lo, windows[job_id].hi
            ranges[job_id] = (lo, min(hi, lo + per_job - 1), None)
    picked = _m4_epochs(session, downsampled, ask.fields) if downsampled else {}
    points = _read(session, ranges, picked, ask.fields)
    truncated = False
    jobs = []
    for row in rows:
        got = points.get(row.id, [])
        window = windows[row.id]
        if row.id in ranges or row.id in downsampled:  # read up to the end of its range
            end = ranges[row.id][1] if row.id in ranges else window.hi
            seen[row.batch_index] = end
            truncated = truncated or end < window.hi
        jobs.append({"id": row.id, "status": row.status, **_shape(got, ask.fields, ask.columns)})
    return {
        "jobs": jobs,
        "next_cursor": epochs_cursor(batch.id, seen),
        "truncated": truncated,
        "complete": not truncated and all(row.status in FINISHED for row in rows),
    }


def mean_epoch_seconds(session: Session, job_id: str) -> float | None:
    """A typical wall time of the job's recent epochs (None before its first): the median
    of the last ``ETA_WINDOW``, leaving out epoch 1 once there are others. The first epoch
    carries the warm-up (data loading, first allocations) and single epochs spike (a
    checkpoint, a busy core); with a mean, early ETAs swung several-fold within seconds."""
    recent = session.execute(
        select(CurvePoint.epoch, CurvePoint.seconds)
        .where(CurvePoint.job_id == job_id)
        .order_by(CurvePoint.epoch.desc())
        .limit(ETA_WINDOW)
    ).all()
    times = sorted(seconds for epoch, seconds in recent if epoch != 1)
    if not times:
        times = [seconds for _, seconds in recent]
    if not times:
        return None
    middle = len(times) // 2
    median = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
    return float(median)
