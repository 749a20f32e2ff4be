"""The state store of release 0.1's first migration: models, versions, the durable log, the
prediction index, labels, profiles, metric points, evaluations, CloudEvents halves, tokens.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_models",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("champion", sa.String(200)),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("label_horizon_seconds", sa.Float, nullable=False),
        sa.Column("retention_days", sa.Float, nullable=False),
        sa.Column("segments", sa.JSON, nullable=False),
    )

    op.create_table(
        "wk_model_versions",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("reference_profile", sa.LargeBinary, nullable=False),
        sa.Column("reference_rows", sa.Integer, nullable=False),
        sa.Column("reference_sample", sa.LargeBinary),  # Parquet bytes, a few thousand rows
    )

    # The durable log: a batch is acknowledged once its row is committed here.
    op.create_table(
        "wk_ingest_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),  # Arrow IPC stream of the events
        sa.Column("processed", sa.Boolean, nullable=False),
        sa.Index("ix_wk_batches_pending", "processed", "id"),
    )

    op.create_table(
        "wk_predictions",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("prediction_id", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("event_time", sa.Float, nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("segment", sa.String(400), nullable=False),
        sa.Column("prediction", sa.String(400)),
        sa.Column("score", sa.Float),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),  # retention prunes by this
    )

    op.create_table(
        "wk_actuals",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("prediction_id", sa.String(200), primary_key=True),
        sa.Column("label", sa.String(400), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),  # matched, unmatched or late
    )

    # Performance aggregates of the bucket the *prediction* belongs to, updated as labels arrive.
    op.create_table(
        "wk_bucket_performance",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("segment", sa.String(400), primary_key=True),
        sa.Column("granularity", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("labels", sa.Integer, nullable=False),
        sa.Column("aggregate", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )

    op.create_table(
        "wk_counters",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "wk_quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("prediction_id", sa.String(200)),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
    )

    op.create_table(
        "wk_bucket_profiles",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("segment", sa.String(400), primary_key=True),
        sa.Column("granularity", sa.Integer, primary_key=True),  # seconds: the window, or 86400
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("profile", sa.LargeBinary, nullable=False),
        sa.Column("operations", sa.JSON, nullable=False),
        sa.Column("performance", sa.JSON),
        sa.Column("dirty", sa.Boolean, nullable=False),
    )

    op.create_table(
        "wk_metric_points",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("segment", sa.String(400), nullable=False),
        sa.Column("window_start", sa.Integer, nullable=False),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("detail", sa.JSON),
        sa.Index("ix_wk_points", "model", "metric", "window_start"),
    )

    # One half of a CloudEvents request/response pair, waiting for the other half.
    op.create_table(
        "wk_cloudevents_pending",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(10), primary_key=True),  # request or response
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("event_time", sa.Float),
        sa.Column("version", sa.String(200)),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )

    op.create_table(
        "wk_evaluations",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("segment", sa.String(400), primary_key=True),
        sa.Column("window_start", sa.Integer, primary_key=True),
        sa.Column("evaluated_at", sa.Float, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
    )

    op.create_table(
        "wk_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hash", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("wk_tokens")
    op.drop_table("wk_evaluations")
    op.drop_table("wk_cloudevents_pending")
    op.drop_table("wk_metric_points")
    op.drop_table("wk_bucket_profiles")
    op.drop_table("wk_quarantine")
    op.drop_table("wk_counters")
    op.drop_table("wk_bucket_performance")
    op.drop_table("wk_actuals")
    op.drop_table("wk_predictions")
    op.drop_table("wk_ingest_batches")
    op.drop_table("wk_model_versions")
    op.drop_table("wk_models")
