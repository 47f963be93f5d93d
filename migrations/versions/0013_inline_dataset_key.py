"""Content-addressed inline datasets: datasets.content_key, unique per tenant, so that two
concurrent first submits of the same inline data store one dataset row (issue 11)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows stored before stay NULL (uploads always do): NULLs never conflict, and
    # service.datasets.store_inline still finds an older equal dataset by its sha256.
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_key", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "uq_datasets_tenant_content", ["tenant_id", "content_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("uq_datasets_tenant_content")
        batch_op.drop_column("content_key")
