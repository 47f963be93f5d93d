"""jobs.request_id: the submitting request's id, so that every send of a job carries it to
the worker's log lines, whoever sends it (the API, another run's dispatch pass, the reaper)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs submitted before stay NULL: their sends carry no request id, as before.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("request_id")
