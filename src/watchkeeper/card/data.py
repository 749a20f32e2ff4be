"""What a version's model card says, read from the store: :func:`model_card` (a JSON-ready
dict; :mod:`watchkeeper.card.render` writes it as HTML or Markdown)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from watchkeeper import __version__
from watchkeeper.evaluation.performance import performance_points
from watchkeeper.evaluation.window_slices import read_slices, slice_windows
from watchkeeper.ingest.registry import task_of
from watchkeeper.schema import ColumnType
from watchkeeper.store import tables as t
from watchkeeper.store.history import history
from watchkeeper.store.promotion import states
from watchkeeper.store.state import NotFoundError, Store

__all__ = ["ATTRIBUTIONS", "WINDOWS", "model_card"]

WINDOWS = 24  # the newest windows the card lists
HISTORY = 200  # the newest alert and lineage events it lists
LINEAGE_KINDS = (
    "version_registered",
    "action_queued",
    "action_succeeded",
    "action_failed",
    "action_timeout",
    "shadow_started",
    "canary_started",
    "promoted",
    "rolled_back",
    "retired",
    "verdict",
)
ALERT_KINDS = ("alert_firing", "alert_resolved")

# The attributions section's hook (issue 15: ``watchkeeper.attributions``): a function of
# (store, model, version) giving the version's reference attributions as a JSON-ready dict
# ({"method", "features": [{"feature", "share", ...}], ...}) or None when the reference
# carries none: then the card says "not computed". The service's own
# (``stored_attributions``) is the first.
Attributions = Callable[[Store, str, str], dict[str, Any] | None]


def stored_attributions(store: Store, model: str, version: str) -> dict[str, Any] | None:
    """The version's attribution shares as the service keeps them (a fitted Reference's, or
    its served artifact's: docs/explain.md), largest share first; None without them."""
    kept = store.reference_attributions(model, version)
    if not kept or not kept.get("shares"):
        return None
    shares = sorted(kept["shares"].items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "method": kept.get("method", ""),
        "source": kept.get("source", "model"),
        "approximate": kept.get("source") == "surrogate",
        "fidelity": kept.get("fidelity"),
        "origin": kept.get("origin", "reference"),
        "features": [{"feature": f, "share": float(v)} for f, v in shares],
    }


ATTRIBUTIONS: list[Attributions] = [stored_attributions]


def model_card(store: Store, model: str, version: str | None = None) -> dict[str, Any]:
    """The card of ``version`` of ``model`` (default: its champion). :class:`NotFoundError`
    names an unknown model or version."""
    info = store.model(model)
    version = version if version is not None else info.champion
    if version is None:
        raise NotFoundError(f"model {model!r} has no version yet")
    row = store.version(model, version)
    schema, reference = store.reference(model, version)
    task = task_of(schema)
    state = next((s for s in states(store, model) if s["version"] == version), None)
    metric = "mae" if task == "regression" else "accuracy"
    return {
        "model": model,
        "version": version,
        "generated_by": f"watchkeeper {__version__}",
        "registered_at": float(row["created_at"]),
        "state": None if state is None else state["state"],
        "champion": info.champion,
        "metadata": dict(row.get("card") or {}),
        "task": task,
        "window_seconds": info.window_seconds,
        "reference": _reference(schema, reference, int(row["reference_rows"])),
        "performance": {
            "metric": metric,
            "reference": _reference_performance(row.get("reference_performance")),
            "windows": _windows(store, model, version, metric),
        },
        "drift": _drift(store, model, version),
        "alerts": [
            e
            for e in history(store, model, kinds=ALERT_KINDS, limit=HISTORY)
            if e["version"] == version
        ],
        "failing_slices": _slices(store, model, version),
        "attributions": _attributions(store, model, version),
        "lineage": {
            "versions": states(store, model),
            "events": history(store, model, kinds=LINEAGE_KINDS, limit=HISTORY),
        },
    }


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _reference(schema: Any, reference: Any, rows: int) -> dict[str, Any]:
    """The training reference profile's summary: per column, role, type, missing share and
    (numeric) mean, standard deviation, 5 %, 50 %, 95 % quantiles or (categorical) the most
    frequent categories."""
    columns = []
    for name, col in schema.columns.items():
        prof = reference.columns.get(name)
        entry: dict[str, Any] = {"name": name, "role": col.role.value, "type": col.type.value}
        if prof is not None:
            total = max(int(prof.count) + int(prof.nulls), 1)
            entry["missing_share"] = int(prof.nulls) / total
            if col.type == ColumnType.NUMERIC and hasattr(prof, "mean"):
                entry["mean"] = _finite(prof.mean)
                entry["std"] = _finite(prof.std) if prof.count > 1 else None
                entry["quantiles"] = {
                    q: _finite(prof.quantile(float(q))) if prof.count else None
                    for q in ("0.05", "0.5", "0.95")
                }
            elif hasattr(prof, "categories"):
                counts = [int(c) for c in prof.counts[: len(prof.categories)]]
                top = sorted(zip(prof.categories, counts, strict=True), key=lambda c: -c[1])[:5]
                entry["top"] = [{"value": v, "share": c / total} for v, c in top]
        columns.append(entry)
    return {"rows": rows, "columns": columns}


def _reference_performance(folded: dict[str, Any] | None) -> dict[str, Any] | None:
    if folded is None:
        return None
    return {
        name: {"value": value, "low": d.get("low"), "high": d.get("high"), "n": d.get("n")}
        for name, (value, d) in performance_points(folded).items()
    }


def _points(store: Store, model: str, version: str, metrics: list[str]) -> list[Any]:
    mp = t.metric_points.c
    seg = "*" if store.model(model).segments else ""
    q = sa.select(mp.window_start, mp.metric, mp.feature, mp.value, mp.detail).where(
        (mp.model == model)
        & (mp.version == version)
        & (mp.segment == seg)
        & (mp.window_seconds < 86400)
        & mp.metric.in_(metrics)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(q.order_by(mp.window_start.desc())).all())


def _windows(store: Store, model: str, version: str, metric: str) -> list[dict[str, Any]]:
    """The newest :data:`WINDOWS` windows: events, labels, the realized and the estimated
    ``metric`` (with intervals) and the drifted share."""
    estimated = f"estimated_{metric}"
    wanted = ["count", "labels", metric, estimated, "drifted_share"]
    by: dict[int, dict[str, Any]] = {}
    for start, name, _feature, value, detail in _points(store, model, version, wanted):
        w = by.setdefault(int(start), {"window_start": int(start)})
        if name in (metric, estimated):
            d = detail or {}
            w[name] = {"value": value, "low": d.get("low"), "high": d.get("high")}
        else:
            w[name] = value
    return [by[k] for k in sorted(by, reverse=True)[:WINDOWS]]


def _drift(store: Store, model: str, version: str) -> dict[str, Any]:
    """How often each feature drifted over the version's windows, most often first."""
    windows: set[int] = set()
    drifted: Counter[str] = Counter()
    for start, _name, feature, _value, detail in _points(
        store, model, version, ["drift_statistic"]
    ):
        windows.add(int(start))
        if (detail or {}).get("drifted"):
            drifted[feature] += 1
    return {
        "windows": len(windows),
        "features": [{"feature": f, "windows_drifted": n} for f, n in drifted.most_common()],
    }


def _slices(store: Store, model: str, version: str) -> dict[str, Any]:
    windows = slice_windows(store, model, version)
    latest = None
    if windows:
        latest = read_slices(store, model, version=version)
    return {"windows": windows[:WINDOWS], "latest": latest and _plain_latest(latest)}


def _plain_latest(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("window_start", "window_seconds", "labels", "result")}


def _attributions(store: Store, model: str, version: str) -> dict[str, Any] | None:
    for hook in ATTRIBUTIONS:
        found = hook(store, model, version)
        if found is not None:
            return found
    return None
