"""Alerts: API monitors, the engine's cursors and verdicts, alerts and their events, silences,
the delivery outbox, retraining and webhook jobs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "wk_monitors",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )

    # How far the alert engine has read the evaluations, per monitor; a changed spec starts over.
    op.create_table(
        "wk_monitor_cursors",
        sa.Column("monitor", sa.String(200), primary_key=True),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("evaluated_at", sa.Float, nullable=False),
    )

    # One verdict per monitor, target and window: the value judged and whether it breached.
    op.create_table(
        "wk_monitor_windows",
        sa.Column("monitor", sa.String(200), primary_key=True),
        sa.Column("target", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(200), primary_key=True),
        sa.Column("segment", sa.String(400), primary_key=True),
        sa.Column("window_start", sa.Integer, primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("sample_size", sa.Integer),
        sa.Column("breach", sa.Boolean),  # None: not judged (too few samples, still learning)
        sa.Column("healthy", sa.Boolean),  # past the resolve condition (hysteresis)
        sa.Column("detail", sa.JSON),
        sa.Column("state", sa.JSON),  # a sequential detector's state after this window
        sa.Column("updated_at", sa.Float, nullable=False),
    )

    op.create_table(
        "wk_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        # "<monitor>/<target>" while pending or firing, else NULL: one open alert per pair
        sa.Column("open_key", sa.String(410), unique=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("segment", sa.String(400), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),  # pending, firing, resolved, cancelled
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("condition", sa.String(400), nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("window_start", sa.Integer, nullable=False),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("sample_size", sa.Integer),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("notified", sa.String(20)),  # the last transition sent to the notifiers
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("resolved_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Index("ix_wk_alerts_model_state", "model", "state"),
        sa.Index("ix_wk_alerts_monitor_target", "monitor", "target"),
    )

    op.create_table(
        "wk_alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("window_start", sa.Integer),
        sa.Column("message", sa.String(1000), nullable=False),
    )

    op.create_table(
        "wk_silences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("comment", sa.String(1000), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("starts_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )

    # The delivery outbox: one row per (alert transition, notifier), retried until sent.
    op.create_table(
        "wk_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("transition", sa.String(20), nullable=False),  # firing or resolved
        sa.Column("notifier", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),  # pending, sent, failed, silenced
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.String(2000)),
        sa.Column("payload", sa.JSON, nullable=False),  # the alert as of the transition
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("duration", sa.Float),
        sa.UniqueConstraint("alert_id", "transition", "notifier", name="uq_wk_deliveries"),
        sa.Index("ix_wk_deliveries_due", "status", "next_attempt_at"),
    )

    # Actions run when an alert fires: a retraining command or a webhook call.
    op.create_table(
        "wk_retrain_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),  # retrain or webhook
        # queued, running, succeeded, failed, timeout, skipped
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("running_key", sa.String(200), unique=True),  # the model while queued or running
        sa.Column("action", sa.JSON, nullable=False),
        sa.Column("dataset", sa.String(2000)),
        sa.Column("rows", sa.Integer),
        sa.Column("window_start", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("duration", sa.Float),
        sa.Column("exit_code", sa.Integer),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("error", sa.String(2000)),
    )


def downgrade() -> None:
    op.drop_table("wk_retrain_jobs")
    op.drop_table("wk_deliveries")
    op.drop_table("wk_silences")
    op.drop_table("wk_alert_events")
    op.drop_table("wk_alerts")
    op.drop_table("wk_monitor_windows")
    op.drop_table("wk_monitor_cursors")
    op.drop_table("wk_monitors")
