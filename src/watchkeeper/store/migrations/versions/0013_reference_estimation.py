"""Performance estimation in the service: a version's fitted estimator (CBPE or DLE), fitted on
its labelled reference at registration (``wk_model_versions.reference_estimation``: an ``.npz``
archive, :mod:`watchkeeper.estimation.state`; null for a version whose reference lacks the
target, the prediction or a classifier's scores, and for versions registered before this
revision).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.add_column(sa.Column("reference_estimation", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wk_model_versions") as batch:
        batch.drop_column("reference_estimation")
