"""The dead-letter table of the durable log (``wk_dead_batches``): a batch the processor
failed on ``processor_max_attempts`` times in a row is moved there with its error, so the
batches after it are not held up.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_dead_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("dead_at", sa.Float, nullable=False),
    )
    op.create_index("ix_wk_dead_batches_model", "wk_dead_batches", ["model", "id"])


def downgrade() -> None:
    op.drop_index("ix_wk_dead_batches_model", table_name="wk_dead_batches")
    op.drop_table("wk_dead_batches")
