"""Sweeps: trial_decisions (what schedulers decided), jobs.origin, batches.growing,
checkpoints.adopted; the stops kept in batches.scheduler_state move to trial_decisions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

batches = sa.table("batches", sa.column("id", sa.String), sa.column("scheduler_state", sa.JSON))
decisions = sa.table(
    "trial_decisions",
    sa.column("job_id", sa.String),
    sa.column("generation", sa.Integer),
    sa.column("epoch", sa.Integer),
    sa.column("batch_id", sa.String),
    sa.column("action", sa.String),
    sa.column("detail", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "trial_decisions",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "generation", "epoch"),
    )
    with op.batch_alter_table("trial_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trial_decisions_batch_id"), ["batch_id"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.JSON(), nullable=True))
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("adopted", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    connection = op.get_bind()
    rows = []
    for batch_id, state in connection.execute(sa.select(batches.c.id, batches.c.scheduler_state)):
        for job_id, detail in ((state or {}).get("stopped") or {}).items():
            rows.append(
                {"job_id": job_id, "generation": 0, "epoch": int(detail.get("epoch") or 0),
                 "batch_id": batch_id, "action": "stop", "detail": detail,
                 "created_at": sa.func.now()}
            )  # fmt: skip
    for row in rows:
        connection.execute(decisions.insert().values(**row))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("growing", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.drop_column("scheduler_state")


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduler_state", sa.JSON(), nullable=True))
        batch_op.drop_column("growing")
    connection = op.get_bind()
    stopped: dict[str, dict] = {}
    query = sa.select(decisions.c.batch_id, decisions.c.job_id, decisions.c.detail).where(
        decisions.c.action == "stop"
    )
    for batch_id, job_id, detail in connection.execute(query):
        stopped.setdefault(batch_id, {})[job_id] = detail
    for batch_id, jobs in stopped.items():
        connection.execute(
            batches.update()
            .where(batches.c.id == batch_id)
            .values(scheduler_state={"stopped": jobs})
        )
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.drop_column("adopted")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("origin")
    with op.batch_alter_table("trial_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trial_decisions_batch_id"))
    op.drop_table("trial_decisions")
