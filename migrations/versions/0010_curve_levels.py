"""curve_levels: stored M4 levels of every curve (service.curves), backfilled from the points

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:30:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: the numbers of a point when this revision was written, and the block sizes.
NUMBERS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "learning_rate", "seconds")
STATS = ("min", "min_epoch", "max", "max_epoch")
LEVEL_BASE, LEVELS = 8, 5
STAT_NAMES = [f"{name}_{stat}" for name in NUMBERS for stat in STATS]


def upgrade() -> None:
    op.create_table(
        "curve_levels",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("first_epoch", sa.Integer(), nullable=False),
        sa.Column("last_epoch", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Integer() if name.endswith("epoch") else sa.Float(), nullable=True)
            for name in STAT_NAMES
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "level", "block"),
    )
    backfill(op.get_bind())


def backfill(bind: Any) -> None:
    """Every stored curve's levels, one job at a time (as service.curve_store.refresh_levels
    would write them for points flushed in one go)."""
    points = sa.table(
        "curve_points", sa.column("job_id"), sa.column("epoch"), *(sa.column(n) for n in NUMBERS)
    )
    levels = sa.table(
        "curve_levels",
        *(sa.column(n) for n in ("job_id", "level", "block", "first_epoch", "last_epoch")),
        *(sa.column(n) for n in STAT_NAMES),
    )
    job_ids = [row[0] for row in bind.execute(sa.select(points.c.job_id).distinct())]
    for job_id in job_ids:
        query = (
            sa.select(points.c.epoch, *(points.c[n] for n in NUMBERS))
            .where(points.c.job_id == job_id)
            .order_by(points.c.epoch)
        )
        children = []
        for row in bind.execute(query):
            unit = [row[0], row[0]]
            for value in row[1:]:
                unit += [None] * 4 if value is None else [value, row[0], value, row[0]]
            children.append(unit)
        rows = []
        for k in range(1, LEVELS + 1):
            size = LEVEL_BASE**k
            merged: dict[int, list[Any]] = {}
            for child in children:
                into = merged.get(child[0] // size)
                if into is None:
                    merged[child[0] // size] = list(child)
                    continue
                into[1] = child[1]
                for i in range(2, len(child), 4):
                    if child[i] is not None:
                        if into[i] is None or child[i] < into[i]:
                            into[i], into[i + 1] = child[i], child[i + 1]
                        if into[i + 2] is None or child[i + 2] > into[i + 2]:
                            into[i + 2], into[i + 3] = child[i + 2], child[i + 3]
            names = ["first_epoch", "last_epoch", *STAT_NAMES]
            rows += [
                {"job_id": job_id, "level": k, "block": b, **dict(zip(names, u, strict=True))}
                for b, u in merged.items()
            ]
            children = [merged[b] for b in sorted(merged)]
        if rows:
            bind.execute(levels.insert(), rows)


def downgrade() -> None:
    op.drop_table("curve_levels")
