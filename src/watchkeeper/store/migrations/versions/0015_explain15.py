"""Drift impact in the service: a version's attribution shares
(``wk_model_versions.reference_attributions``: JSON ``{"shares": {feature: share}, "source",
"method", "fidelity"}``), carried by a fitted ``Reference`` at registration or computed from
the version's served artifact when it is attached; null before this revision and for
versions with neither.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.add_column(sa.Column("reference_attributions", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.drop_column("reference_attributions")
