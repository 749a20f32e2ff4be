"""Dashboard sessions (``wk_sessions``): the cookie holds a random id, the row its hash, the
token it was opened with, the forms' CSRF token and when it ends.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("token_id", sa.String(32), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_wk_sessions_token", "wk_sessions", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_wk_sessions_token", table_name="wk_sessions")
    op.drop_table("wk_sessions")
