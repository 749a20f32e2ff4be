"""Multivariate drift in the service: a version's PCA state, fitted on its reference at
registration (``wk_model_versions.reference_multivariate``: an ``.npz`` archive, null for a
version without two varying features and for versions registered before this revision), and
an index of the prediction index by window (``ix_wk_predictions_bucket``), through which a
window's events are found in the lake.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.add_column(sa.Column("reference_multivariate", sa.LargeBinary, nullable=True))
    op.create_index("ix_wk_predictions_bucket", "wk_predictions", ["model", "bucket"])


def downgrade() -> None:
    op.drop_index("ix_wk_predictions_bucket", "wk_predictions")
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.drop_column("reference_multivariate")
