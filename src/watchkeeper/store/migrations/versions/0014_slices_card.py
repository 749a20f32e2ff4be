"""Failing slices per window and a version's card metadata: ``wk_window_slices`` holds each
labelled whole-model window's failing slices (:mod:`watchkeeper.evaluation.window_slices`),
``wk_model_versions.card`` the description, owner and intended use given at registration (null
when none was given, and for versions registered before this revision).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_window_slices",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("window_start", sa.Integer, primary_key=True),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("computed_at", sa.Float, nullable=False),
        sa.Column("labels", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.add_column(sa.Column("card", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.drop_column("card")
    op.drop_table("wk_window_slices")
