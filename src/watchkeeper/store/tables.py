"""The state store's tables (SQLAlchemy Core).

The migrations that create them are Alembic revisions in ``store/migrations``: a change here
comes with a new revision there, and ``tests/service/test_migrations.py`` fails while the two
disagree.
"""

from __future__ import annotations

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
    # what windows drift against: "training" (the version's reference) or "previous_window"
    sa.Column("drift_reference", sa.String(20), nullable=False, server_default="training"),
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
    # the training baseline: the reference's labelled rows folded (stats.labelled), or null
    sa.Column("reference_performance", sa.JSON),
    # the PCA check's reference side (multivariate.state: an .npz archive, no pickle), or null
    # (fewer than two varying features, or registered before revision 0011)
    sa.Column("reference_multivariate", sa.LargeBinary),
    # the performance estimator (estimation.state: an .npz archive, no pickle), or null (no
    # target, prediction or classifier scores in the reference, or registered before 0013)
    sa.Column("reference_estimation", sa.LargeBinary),
    # the model card's metadata given at registration (description, owner, intended_use), or
    # null (none given, or registered before revision 0014)
    sa.Column("card", sa.JSON),
    # the attribution shares of drift impact (attributions: {"shares", "source", "method",
    # "fidelity"}): a fitted Reference's, or the served artifact's; null before 0015
    sa.Column("reference_attributions", sa.JSON),
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
    sa.Index("ix_wk_predictions_bucket", "model", "bucket"),  # a window's rows, found
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
    sa.Index("ix_wk_quarantine_id", "model", "prediction_id"),  # a retry's rows, found
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
    # every dashboard read names model, version, segment and metric, then a window range; with
    # feature and value in it a series is read from the index alone
    sa.Index(
        "ix_wk_points_scope",
        "model",
        "version",
        "segment",
        "metric",
        "window_start",
        "feature",
        "value",
    ),
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

# The failing slices of each labelled whole-model window (evaluation.window_slices): the
# library's FailingSlices.to_dict() of the window's labelled rows, replaced as labels arrive.
window_slices = sa.Table(
    "wk_window_slices",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("window_start", sa.Integer, primary_key=True),
    sa.Column("window_seconds", sa.Integer, nullable=False),
    sa.Column("computed_at", sa.Float, nullable=False),
    sa.Column("labels", sa.Integer, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
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

# dashboard sessions (store/sessions.py): the cookie holds a random id, this row its hash
sessions = sa.Table(
    "wk_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.String(32), nullable=False),  # revoking the token ends them
    sa.Column("csrf", sa.String(64), nullable=False),  # the forms' token of this session
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_wk_sessions_token", "token_id"),
)


# ---------------------------------------------------------------------------- alerts

# Monitors created through the API (those of the settings file are not stored).
monitors = sa.Table(
    "wk_monitors",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# How far the alert engine has read the evaluations, per monitor; a changed spec starts over.
monitor_cursors = sa.Table(
    "wk_monitor_cursors",
    metadata,
    sa.Column("monitor", sa.String(200), primary_key=True),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("evaluated_at", sa.Float, nullable=False),
)

# One verdict per monitor, target and window: the value judged and whether it breached.
monitor_windows = sa.Table(
    "wk_monitor_windows",
    metadata,
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

alerts = sa.Table(
    "wk_alerts",
    metadata,
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

alert_events = sa.Table(
    "wk_alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("window_start", sa.Integer),
    sa.Column("message", sa.String(1000), nullable=False),
)

silences = sa.Table(
    "wk_silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("matchers", sa.JSON, nullable=False),
    sa.Column("comment", sa.String(1000), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# The delivery outbox: one row per (alert transition, notifier), retried until sent.
deliveries = sa.Table(
    "wk_deliveries",
    metadata,
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
retrain_jobs = sa.Table(
    "wk_retrain_jobs",
    metadata,
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
    sa.Column("log", sa.Text, nullable=False, default=""),
    sa.Column("error", sa.String(2000)),
)

# Batches of the durable log the processor failed on too often (processor_max_attempts in a
# row): moved here with the last error, so the batches after them flow on.
dead_batches = sa.Table(
    "wk_dead_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("batch_id", sa.Integer, nullable=False),  # its id in wk_ingest_batches
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # as logged: kept for inspection
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("dead_at", sa.Float, nullable=False),
    sa.Index("ix_wk_dead_batches_model", "model", "id"),
)

# A version's model artifact (watchkeeper.serving): the file under <data_dir>/artifacts, or an
# MLflow model URI, and what it takes and gives.
artifacts = sa.Table(
    "wk_artifacts",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("format", sa.String(20), nullable=False),  # onnx, skops, mlflow, pickle
    sa.Column("sha256", sa.String(64), nullable=False),  # of the bytes, or of the MLflow URI
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("path", sa.Text),  # relative to <data_dir>/artifacts; none for an MLflow URI
    sa.Column("uri", sa.Text),  # models:/name@alias, models:/name/1 or runs:/<id>/model
    sa.Column("features", sa.JSON, nullable=False),  # input names, in the model's order
    sa.Column("signature", sa.JSON, nullable=False),  # {"inputs": [...], "outputs": [...]}
    sa.Column("trusted", sa.JSON, nullable=False),  # skops types / ["pickle"] trusted
    sa.Column("attached_at", sa.Float, nullable=False),
)

# Champion, challengers and retired versions (store/promotion.py). The champion is
# wk_models.champion; a version here is a challenger (mode shadow, or canary with a share of
# the traffic, sticky by an entity key) or retired.
version_states = sa.Table(
    "wk_version_states",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),  # challenger or retired
    sa.Column("mode", sa.String(20)),  # shadow or canary (a challenger)
    sa.Column("share", sa.Float),  # of the requests a canary answers
    sa.Column("entity_key", sa.String(200)),  # the input that keeps an entity on one version
    sa.Column("changed_at", sa.Float, nullable=False),
)

# Every change of a version's state, in order: the model's history and rollback read it.
promotions = sa.Table(
    "wk_promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    # shadow_started, canary_started, promoted, rolled_back, retired
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("previous", sa.String(200)),  # the champion before a promotion or rollback
    sa.Column("detail", sa.JSON, nullable=False),  # mode, share, verdict id, by whom
    sa.Index("ix_wk_promotions_model", "model", "id"),
)

# What a shadow challenger answered for a request the champion answered: paired with the
# champion's prediction (wk_predictions) and the label (wk_actuals) by prediction_id.
shadow_predictions = sa.Table(
    "wk_shadow_predictions",
    metadata,
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

# A model's promotion policy (promotion/policy.py), as validated.
promotion_policies = sa.Table(
    "wk_promotion_policies",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# A verdict on a challenger: the paired evidence and the decision taken on it.
verdicts = sa.Table(
    "wk_verdicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("champion", sa.String(200), nullable=False),
    sa.Column("challenger", sa.String(200), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    # promote, ready (manual policy), retire, collecting
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Index("ix_wk_verdicts_model", "model", "id"),
)

# The audit trail (store/audit.py): every change made through the API, the dashboard or the
# CLI, append-only. The database refuses UPDATE and DELETE on it (triggers, revision 0012);
# retention never touches it.
audit = sa.Table(
    "wk_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),  # a token's name, "local", "cli:<user>"
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("model", sa.String(200)),  # none for a token, a monitor, a silence
    sa.Column("target", sa.String(400), nullable=False),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Index("ix_wk_audit_model", "model", "id"),
    sa.Index("ix_wk_audit_at", "at"),
)
