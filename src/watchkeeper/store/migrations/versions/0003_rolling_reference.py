"""The rolling reference (``wk_models.drift_reference``) and the quarantine's
(model, prediction_id) index.

Release 0.1 created both in its first step already when it created a database, so a database
stamped at 0002 may have them: each is added only where it is missing.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "drift_reference" not in {c["name"] for c in inspector.get_columns("wk_models")}:
        # what windows drift against: "training" (the version's reference) or "previous_window"
        op.add_column(
            "wk_models",
            sa.Column("drift_reference", sa.String(20), nullable=False, server_default="training"),
        )
    if "ix_wk_quarantine_id" not in {i["name"] for i in inspector.get_indexes("wk_quarantine")}:
        op.create_index("ix_wk_quarantine_id", "wk_quarantine", ["model", "prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_wk_quarantine_id", table_name="wk_quarantine")
    with op.batch_alter_table("wk_models") as batch:  # SQLite drops a column by copying
        batch.drop_column("drift_reference")
