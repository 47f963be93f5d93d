"""curve_points.activation_stats: per-layer activation statistics (training.record.activations)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("curve_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("activation_stats", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("curve_points", schema=None) as batch_op:
        batch_op.drop_column("activation_stats")
