"""The state store's tables (SQLAlchemy Core), and the migrations that create them.

Migrations are numbered steps applied in order inside one transaction each; the applied
version is kept in ``wk_schema_version``. A new release appends a step, never edits one.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "wk_models",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("champion", sa.String(200)),
    sa.Column("window_seconds", sa.Integer, nullable=False),
    sa.Column("label_horizon_seconds", sa.Float, nullable=False),
    sa.Column("retention_days", sa.Float, nullable=False),
    sa.Column("segments", sa.JSON, nullable=False),
)

versions = sa.Table(
    "wk_model_versions",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("schema", sa.JSON, nullable=False),
    sa.Column("reference_profile", sa.LargeBinary, nullable=False),
    sa.Column("reference_rows", sa.Integer, nullable=False),
    sa.Column("reference_sample", sa.LargeBinary),  # Parquet bytes, at most a few thousand rows
)

# The durable log: a batch is acknowledged once its row is committed here.
batches = sa.Table(
    "wk_ingest_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # Arrow IPC stream of the events
    sa.Column("processed", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_wk_batches_pending", "processed", "id"),
)

predictions = sa.Table(
    "wk_predictions",
    metadata,
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

actuals = sa.Table(
    "wk_actuals",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("prediction_id", sa.String(200), primary_key=True),
    sa.Column("label", sa.String(400), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # matched, unmatched or late
)

# Performance aggregates of the bucket the *prediction* belongs to, updated as labels arrive.
bucket_performance = sa.Table(
    "wk_bucket_performance",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("segment", sa.String(400), primary_key=True),
    sa.Column("granularity", sa.Integer, primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True),
    sa.Column("labels", sa.Integer, nullable=False),
    sa.Column("aggregate", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

counters = sa.Table(
    "wk_counters",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

quarantine = sa.Table(
    "wk_quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("prediction_id", sa.String(200)),
    sa.Column("event", sa.JSON, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
)

bucket_profiles = sa.Table(
    "wk_bucket_profiles",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("segment", sa.String(400), primary_key=True),
    sa.Column("granularity", sa.Integer, primary_key=True),  # seconds: the window, or 86400
    sa.Column("bucket", sa.Integer, primary_key=True),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("profile", sa.LargeBinary, nullable=False),
    sa.Column("operations", sa.JSON, nullable=False),
    sa.Column("performance", sa.JSON),
    sa.Column("dirty", sa.Boolean, nullable=False, default=True),
)

metric_points = sa.Table(
    "wk_metric_points",
    metadata,
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
cloudevents_pending = sa.Table(
    "wk_cloudevents_pending",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),  # request or response
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("event_time", sa.Float),
    sa.Column("version", sa.String(200)),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

evaluations = sa.Table(
    "wk_evaluations",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("segment", sa.String(400), primary_key=True),
    sa.Column("window_start", sa.Integer, primary_key=True),
    sa.Column("evaluated_at", sa.Float, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)

tokens = sa.Table(
    "wk_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("hash", sa.String(128), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

schema_version = sa.Table(
    "wk_schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)


def _initial(conn: sa.Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS: list[Callable[[sa.Connection], None]] = [_initial]


def migrate(engine: sa.Engine) -> int:
    """Apply the migrations not applied yet; return the version now in force."""
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(schema_version.insert().values(version=number))
    return len(MIGRATIONS)
