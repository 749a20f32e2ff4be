"""The metric points' scope index: every dashboard read names model, version, segment and
metric, then a window range; with feature and value in it a series is read from the index alone.

Release 0.1 created it in its first step already when it created a database: it is added only
where it is missing.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if "ix_wk_points_scope" in {
        i["name"] for i in sa.inspect(op.get_bind()).get_indexes("wk_metric_points")
    }:
        return
    op.create_index(
        "ix_wk_points_scope",
        "wk_metric_points",
        ["model", "version", "segment", "metric", "window_start", "feature", "value"],
    )


def downgrade() -> None:
    op.drop_index("ix_wk_points_scope", table_name="wk_metric_points")
