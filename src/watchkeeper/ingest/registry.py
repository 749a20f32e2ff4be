"""Registration and status: a model's versions with their training reference, and what the
registered version says about its target (the task, a binary target's classes)."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.constraints import apply as apply_rules
from watchkeeper.errors import InputError
from watchkeeper.estimation.section import fit_estimator
from watchkeeper.estimation.state import estimator_to_bytes
from watchkeeper.ingest.events import RESERVED
from watchkeeper.io import column_names, to_table
from watchkeeper.multivariate import fit_multivariate, methods_of
from watchkeeper.multivariate.state import pca_state
from watchkeeper.profiles import DatasetProfile, profile_reference
from watchkeeper.reference import Reference, carried
from watchkeeper.schema import Role, Schema, explain_schema
from watchkeeper.settings import Settings
from watchkeeper.stats.labelled import binary_classes
from watchkeeper.stats.numeric import DEFAULT_BINS
from watchkeeper.store.state import DRIFT_REFERENCES, Store, check_name

SAMPLE_ROWS = 5000


def register(
    store: Store,
    settings: Settings,
    model: str,
    reference: object,
    *,
    version: str = "v1",
    target: str | None = None,
    prediction: str | None = None,
    scores: str | Sequence[str] | None = None,
    segments: str | Sequence[str] | None = None,
    features: str | Sequence[str] | None = None,
    ignore: str | Sequence[str] | None = None,
    schema: Schema | None = None,
    window_seconds: int | None = None,
    label_horizon_days: float | None = None,
    retention_days: float | None = None,
    champion: bool = True,
    drift_reference: str | None = None,
    constraints: object = None,
    on_violation: str | None = None,
    description: str | None = None,
    owner: str | None = None,
    intended_use: str | None = None,
) -> dict[str, Any]:
    """Register a model (if new) and a version with its training reference: its schema (given
    or inferred), its frozen reference profile, a sample of its rows and its performance (the
    training baseline, when it has the target and the prediction). ``constraints`` (a
    document, a Great Expectations suite, or ``"suggest"``) and ``on_violation`` set the
    schema's validation rules (see ``watchkeeper.constraints``). ``features`` and ``ignore``
    force columns to be features or to be left out of monitoring; columns that look like a
    model's score or an epoch time are kept out of the features (``watchkeeper.schema_roles``).
    The answer's ``roles`` say, per column, its role and why. ``description``, ``owner`` and
    ``intended_use`` are the version's model card metadata (``docs/model-card.md``)."""
    check_name("model", model)
    card = card_metadata(description=description, owner=owner, intended_use=intended_use)
    check_name("version", version)
    if drift_reference is not None and drift_reference not in DRIFT_REFERENCES:
        raise InputError(
            f"drift_reference {drift_reference!r}: use one of {', '.join(DRIFT_REFERENCES)}"
        )
    segments = column_names(segments, "segments")  # one name is one column
    table = to_table(
        reference.to_arrow() if isinstance(reference, Reference) else reference, name="reference"
    )
    bins, seed, joint = DEFAULT_BINS, 0, True  # joint: the PCA check is on
    fitted = carried(table)
    shares: dict[str, Any] | None = None
    if fitted is not None:  # a fitted Reference: its schema as fitted, no new inference
        if schema is not None:
            raise InputError("schema: the reference is a fitted Reference and has its own")
        table, schema, options = fitted
        shares = options.get("attribution_shares")
        _agree(options, target=target, prediction=prediction, scores=scores)
        bins = int(options.get("bins") or DEFAULT_BINS)
        seed = options.get("seed", 0)
        joint = "pca" in methods_of(options.get("multivariate", "pca"))
        reasons = {name: "as fitted (Reference.fit)" for name in schema.columns}
        schema = _only_columns(schema, options.get("columns"), reasons)
        _agree_roles(schema, features or (), ignore or ())
    elif schema is None:
        schema, reasons = explain_schema(
            table, target=target, prediction=prediction, scores=scores, segments=segments,
            features=features or (), ignore=ignore or (), exclude_lookalikes=True,
        )  # fmt: skip
    else:
        reasons = {name: "from the given schema" for name in schema.columns}
    if constraints is not None or on_violation is not None:
        schema = apply_rules(schema, constraints, on_violation=on_violation, reference=table)
    for name in segments:
        if name not in schema.columns:
            raise InputError(f"segment column {name!r} is not in the reference")
    clash = [
        c.name
        for c in schema.columns.values()
        if c.name in RESERVED and c.role in (Role.FEATURE, Role.SEGMENT)
    ]
    if clash:
        raise InputError(
            f"reference column(s) {clash} have reserved event field names; rename them"
        )
    profile = profile_reference(table, schema, bins=bins)
    from watchkeeper.ingest.baseline import reference_performance  # it imports this module

    if model not in {m.name for m in store.models()}:
        store.create_model(
            model,
            window_seconds=window_seconds or settings.window_seconds,
            label_horizon_seconds=(label_horizon_days or settings.label_horizon_days) * 86400,
            retention_days=retention_days or settings.retention_days,
            segments=list(segments or schema_segments(schema)),
            drift_reference=drift_reference or "training",
        )
    store.add_version(
        model,
        version,
        schema=schema.to_dict(),
        reference_profile=profile.to_bytes(),
        reference_rows=table.num_rows,
        reference_sample=_sample(table),
        reference_performance=reference_performance(table, schema, profile),
        reference_multivariate=_multivariate(table, schema, seed) if joint else None,
        reference_estimation=_estimation(table, schema, seed),
        reference_attributions=shares,
        champion=champion,
        card=card,
    )
    return {
        "model": model,
        "version": version,
        "reference_rows": table.num_rows,
        "schema": schema.to_dict(),
        "roles": [
            {"name": c.name, "role": c.role.value, "type": c.type.value, "reason": reasons[c.name]}
            for c in schema.columns.values()
        ],
    }


def _agree(options: dict[str, Any], **given: Any) -> None:
    """A parameter given beside a fitted Reference must say what the Reference says."""
    for key, raw in given.items():
        if raw is None:
            continue
        value, fitted = raw, options.get(key)
        if key == "scores":
            value, fitted = column_names(raw, "scores"), list(fitted or [])
        if value != fitted:
            raise InputError(
                f"{key}: {value!r} differs from the fitted Reference's {fitted!r}; "
                "leave it out or fit the Reference with it"
            )


def _only_columns(schema: Schema, columns: Sequence[str] | None, reasons: dict[str, str]) -> Schema:
    """A Reference fitted with ``columns=`` compares only those: its other features are not
    monitored by the service either (ignored, saying why)."""
    if not columns:
        return schema
    out = Schema.from_dict(schema.to_dict())  # a copy: the Reference keeps its own
    for col in out.columns.values():
        if col.role is Role.FEATURE and col.name not in columns:
            col.role, col.drift = Role.IGNORED, False
            reasons[col.name] = "as fitted (Reference.fit): not in its columns"
    return out


def _agree_roles(schema: Schema, features: Sequence[str], ignore: Sequence[str]) -> None:
    """``features`` and ``ignore`` beside a fitted Reference must match its schema."""
    for name in column_names(features, "features"):
        col = schema.columns.get(name)
        if col is None or col.role is not Role.FEATURE:
            raise InputError(
                f"features: {name!r} is not a feature of the fitted Reference; "
                "fit it with columns= naming it"
            )
    for name in column_names(ignore, "ignore"):
        col = schema.columns.get(name)
        if col is not None and col.role in (Role.FEATURE, Role.SEGMENT):
            raise InputError(
                f"ignore: {name!r} is monitored by the fitted Reference; "
                "fit it with columns= leaving it out"
            )


def _multivariate(table: pa.Table, schema: Schema, seed: int | None) -> bytes | None:
    """The PCA check's reference side (``docs/multivariate.md``), fitted once here as
    ``Reference.fit`` fits it: each window's ``multivariate_pca`` is judged against it."""
    state = pca_state(fit_multivariate(table, schema, seed), table)
    return None if state is None else state.to_bytes()


def _estimation(table: pa.Table, schema: Schema, seed: int | None) -> bytes | None:
    """The performance estimator (``docs/estimation.md``: CBPE with the schema's score
    columns, DLE for regression), fitted once here as ``Reference.fit`` fits it: each window's
    ``estimated_*`` series is estimated with it. None when the reference lacks the target, the
    prediction or (a classifier) its scores, or the estimator cannot be fitted."""
    target = schema.target
    prediction = next((c.name for c in schema.by_role(Role.PREDICTION)), None)
    if target is None or prediction is None:
        return None
    scores = [c.name for c in schema.by_role(Role.SCORE)] or None
    est = fit_estimator(table, schema, target, prediction, scores, seed)
    return None if isinstance(est, str) else estimator_to_bytes(est)


def _sample(table: pa.Table) -> bytes:
    """Parquet bytes of up to SAMPLE_ROWS rows of the reference, drawn with a fixed seed."""
    sample = table.slice(0, 0)
    if table.num_rows:
        rng = np.random.default_rng(0)
        take = np.sort(rng.choice(table.num_rows, min(SAMPLE_ROWS, table.num_rows), replace=False))
        sample = table.take(pa.array(take))
    buf = io.BytesIO()
    pq.write_table(sample, buf)
    return buf.getvalue()


def status(store: Store, model: str) -> dict[str, Any]:
    """The model's versions, settings and counters."""
    info = store.model(model)
    counters = store.counters(model)
    last = store.last_event_time(model)
    return {
        "model": info.name,
        "champion": info.champion,
        "versions": store.versions(model),
        "segments": info.segments,
        "window_seconds": info.window_seconds,
        "drift_reference": info.drift_reference,
        "events_total": counters.get("events_total", 0),
        "quarantined_total": counters.get("quarantined_total", 0),
        "violations_total": counters.get("violations_total", 0),
        "duplicates_total": counters.get("duplicates_total", 0),
        "actuals_total": counters.get("actuals_total", 0),
        "actuals_unmatched_total": counters.get("actuals_unmatched_total", 0),
        "actuals_late_total": counters.get("actuals_late_total", 0),
        "dead_lettered_batches_total": counters.get("dead_lettered_batches_total", 0),
        "dead_lettered_events_total": counters.get("dead_lettered_events_total", 0),
        "dead_letters_waiting": counters.get("dead_lettered_batches_total", 0)
        - counters.get("dead_letters_replayed_total", 0)
        - counters.get("dead_letters_deleted_total", 0),
        "events_pending": store.pending_events(),
        "last_event_time": last,
        "created_at": info.created_at,
        "now": time.time(),
    }


def schema_segments(schema: Schema) -> list[str]:
    return [c.name for c in schema.by_role(Role.SEGMENT)]


def task_of(schema: Schema) -> str:
    """ "regression" for a numeric target, else "classification"."""
    targets = schema.by_role(Role.TARGET)
    if targets and targets[0].type.value == "numeric":
        return "regression"
    return "classification"


def target_classes(schema: Schema, reference: DatasetProfile) -> list[str] | None:
    """The two classes of a binary target, from the reference profile (None otherwise)."""
    targets = schema.by_role(Role.TARGET)
    if not targets:
        return None
    column = reference.columns.get(targets[0].name)
    return binary_classes(getattr(column, "categories", None))


CARD_FIELDS = ("description", "owner", "intended_use")
CARD_MAX = 10_000  # characters of one card field


def card_metadata(**fields: str | None) -> dict[str, str] | None:
    """The model card's metadata given at registration (those not None), or None; a field
    that is not text, or longer than ``CARD_MAX`` characters, is an :class:`InputError`."""
    out = {}
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > CARD_MAX:
            raise InputError(f"{name} must be text of at most {CARD_MAX:,} characters")
        if value.strip():
            out[name] = value.strip()
    return out or None
