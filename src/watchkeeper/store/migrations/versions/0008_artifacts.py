"""Model artifacts (``wk_artifacts``): a version's ONNX, skops, pickle file or MLflow model
URI, with its format, sha256, input features and signature, for the serving endpoints.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_artifacts",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("uri", sa.Text),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("trusted", sa.JSON, nullable=False),
        sa.Column("attached_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wk_artifacts")
