"""The newest event time per model becomes a maintained counter (``last_event_time_us``,
microseconds), so a model's status no longer scans its prediction index: filled here once from
the index for databases that already hold events.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels: str | None = None
depends_on: str | None = None

NAME = "last_event_time_us"


def upgrade() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    predictions = sa.Table("wk_predictions", meta, autoload_with=conn)
    counters = sa.Table("wk_counters", meta, autoload_with=conn)
    newest = conn.execute(
        sa.select(predictions.c.model, sa.func.max(predictions.c.event_time)).group_by(
            predictions.c.model
        )
    ).all()
    conn.execute(counters.delete().where(counters.c.name == NAME))
    for model, value in newest:
        if value is not None:
            conn.execute(
                counters.insert().values(model=model, name=NAME, value=math.floor(value * 1e6))
            )


def downgrade() -> None:
    counters = sa.Table("wk_counters", sa.MetaData(), autoload_with=op.get_bind())
    op.execute(counters.delete().where(counters.c.name == NAME))
