"""jobs.work and jobs.dispatch_group: tiny jobs share one message (service.dispatch).

``work`` is a job's estimated engine work at submission (``service.budgets.run_work``);
jobs at most ``DELTAFLOW_GROUP_WORK`` are sent several to a message, and
``dispatch_group`` names the message a dispatched job went in, so that a pass counts a
group as the one worker slot it takes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs submitted before stay NULL: never grouped, each sent alone as before.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("work", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("dispatch_group", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("dispatch_group")
        batch_op.drop_column("work")
