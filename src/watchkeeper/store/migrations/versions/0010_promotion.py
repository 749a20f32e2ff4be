"""Champion, challengers and promotion: version states (``wk_version_states``), the log of
state changes (``wk_promotions``), what shadow challengers answered
(``wk_shadow_predictions``), promotion policies (``wk_promotion_policies``) and verdicts
(``wk_verdicts``).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_version_states",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(20)),
        sa.Column("share", sa.Float),
        sa.Column("entity_key", sa.String(200)),
        sa.Column("changed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "wk_promotions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("previous", sa.String(200)),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_wk_promotions_model", "wk_promotions", ["model", "id"])
    op.create_table(
        "wk_shadow_predictions",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("prediction_id", sa.String(200), primary_key=True),
        sa.Column("prediction", sa.String(400)),
        sa.Column("score", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Column("champion_latency_ms", sa.Float),
        sa.Column("error", sa.String(2000)),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "wk_promotion_policies",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "wk_verdicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("champion", sa.String(200), nullable=False),
        sa.Column("challenger", sa.String(200), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_wk_verdicts_model", "wk_verdicts", ["model", "id"])


def downgrade() -> None:
    op.drop_index("ix_wk_verdicts_model", table_name="wk_verdicts")
    op.drop_table("wk_verdicts")
    op.drop_table("wk_promotion_policies")
    op.drop_table("wk_shadow_predictions")
    op.drop_index("ix_wk_promotions_model", table_name="wk_promotions")
    op.drop_table("wk_promotions")
    op.drop_table("wk_version_states")
