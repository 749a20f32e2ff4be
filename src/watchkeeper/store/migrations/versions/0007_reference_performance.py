"""A version's training baseline: the performance of its reference's labelled rows, folded at
registration into the aggregate a window's labels are folded into
(``wk_model_versions.reference_performance``; null for a reference without the target and the
prediction, and for versions registered before this revision).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.add_column(sa.Column("reference_performance", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.drop_column("reference_performance")
