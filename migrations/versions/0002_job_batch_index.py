"""jobs.batch_index: a job's position in its batch

The batch summary lists jobs in this order and the batch curves cursor encodes one
last-seen epoch per position, so the order must be stable even when a job is deleted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_jobs_batch_index", ["batch_id", "batch_index"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_batch_index", type_="unique")
        batch_op.drop_column("batch_index")
