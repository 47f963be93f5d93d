"""Job summaries: per job, the min, max, last value and argmin/argmax epochs of each curve
metric (job_summaries), indexed for filters and orderings; backfilled from stored curves

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: the models may grow, this migration must not.
METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
STATS = ("min", "max", "last", "argmin_epoch", "argmax_epoch")
INDEXED = ("min", "max", "last")


def upgrade() -> None:
    op.create_table(
        "job_summaries",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        *(
            sa.Column(
                f"{m}_{s}", sa.Integer() if s.endswith("epoch") else sa.Float(), nullable=True
            )
            for m in METRICS
            for s in STATS
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("job_summaries", schema=None) as batch_op:
        for m in METRICS:
            for s in INDEXED:
                batch_op.create_index(
                    f"ix_job_summaries_{m}_{s}", ["tenant_id", f"{m}_{s}", "job_id"], unique=False
                )
    _backfill()


def _backfill() -> None:
    """One INSERT ... SELECT over every job with points: aggregates per job, then the value
    at the last epoch and the first epochs of the min and max (the same rules as
    service.summaries.merge; stored points are always finite)."""
    points = sa.table(
        "curve_points", sa.column("job_id", sa.String), sa.column("epoch", sa.Integer),
        *(sa.column(m, sa.Float) for m in METRICS),
    )  # fmt: skip
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("tenant_id", sa.String))
    agg = (
        sa.select(
            points.c.job_id,
            sa.func.max(points.c.epoch).label("epoch"),
            *(sa.func.min(points.c[m]).label(f"{m}_min") for m in METRICS),
            *(sa.func.max(points.c[m]).label(f"{m}_max") for m in METRICS),
        )
        .group_by(points.c.job_id)
        .subquery("agg")
    )
    inner = points.alias("p")

    def at_last(metric: str) -> sa.ScalarSelect:
        return (
            sa.select(inner.c[metric])
            .where(inner.c.job_id == agg.c.job_id, inner.c.epoch == agg.c.epoch)
            .scalar_subquery()
        )

    def first_epoch(metric: str, stat: str) -> sa.ScalarSelect:
        return (
            sa.select(sa.func.min(inner.c.epoch))
            .where(inner.c.job_id == agg.c.job_id, inner.c[metric] == agg.c[f"{metric}_{stat}"])
            .scalar_subquery()
        )

    values = {"job_id": agg.c.job_id, "tenant_id": jobs.c.tenant_id, "epoch": agg.c.epoch}
    for m in METRICS:
        values[f"{m}_min"] = agg.c[f"{m}_min"]
        values[f"{m}_max"] = agg.c[f"{m}_max"]
        values[f"{m}_last"] = at_last(m)
        values[f"{m}_argmin_epoch"] = first_epoch(m, "min")
        values[f"{m}_argmax_epoch"] = first_epoch(m, "max")
    summaries = sa.table("job_summaries", *(sa.column(name) for name in values))
    select = sa.select(*values.values()).select_from(agg.join(jobs, jobs.c.id == agg.c.job_id))
    op.get_bind().execute(summaries.insert().from_select(list(values), select))


def downgrade() -> None:
    with op.batch_alter_table("job_summaries", schema=None) as batch_op:
        for m in METRICS:
            for s in INDEXED:
                batch_op.drop_index(f"ix_job_summaries_{m}_{s}")
    op.drop_table("job_summaries")
