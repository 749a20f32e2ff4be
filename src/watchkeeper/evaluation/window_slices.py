"""A window's failing slices: where the model did worse on the window's labelled rows than on
the rest of them (``docs/slices.md``).

Once labels are joined to a window (``ingest.labels``), its rows are put together: the
matched labels and the logged predictions from the prediction index (``wk_actuals`` and
``wk_predictions``), the features from the Parquet lake (as ``multivariate_pca`` reads them,
:func:`watchkeeper.evaluation.joint.window_rows`), joined on the prediction id. The slices are
the library's (:func:`watchkeeper.slices.failing_slices`, its default options) on those rows
against the version's frozen reference profile bins, at the false-alarm rate of the window's
drift decisions: the same rows given to ``compare()`` find the same slices.

Only the whole model's windows get them (not a segment's: the segments are sliced), and only
windows with labels; they are computed again whenever the window is evaluated again (its late
labels or events), and kept in ``wk_window_slices`` (the result's ``to_dict()``, with the
labelled count it was computed from). A window evaluated again with as many labels (late
events, no new label: matched labels only ever join) keeps them without reading its rows.
Retention deletes them with the window's points.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from watchkeeper.evaluation.joint import window_rows
from watchkeeper.evaluation.window_drift import ALPHA
from watchkeeper.ingest.registry import task_of
from watchkeeper.slices import DEFAULTS, failing_slices
from watchkeeper.slices.cells import slice_features
from watchkeeper.store import tables as t
from watchkeeper.store.state import NotFoundError, Store

__all__ = ["PREDICTION", "TARGET", "WindowSlices", "labelled_rows", "read_slices", "slice_windows"]

# the joined rows' label and prediction columns (not a feature's name: events cannot carry them)
TARGET, PREDICTION = "__wk_label__", "__wk_prediction__"


def labelled_rows(
    store: Store,
    lake_dir: Path,
    model: str,
    version: str,
    start: int,
    end: int,
    features: list[str],
    task: str,
) -> pa.Table:
    """The window's labelled rows: ``features`` (from the lake), :data:`TARGET` and
    :data:`PREDICTION` (numbers for a regression, else the stored strings), one per
    prediction id with a matched label and an event time in ``[start, end)``."""
    p, a = t.predictions.c, t.actuals.c
    q = (
        sa.select(p.prediction_id, p.prediction, a.label)
        .join(t.actuals, (a.model == p.model) & (a.prediction_id == p.prediction_id))
        .where(
            (p.model == model)
            & (p.version == version)
            & (p.bucket >= start)
            & (p.bucket < end)
            & (p.event_time >= start)
            & (p.event_time < end)
            & (a.status == "matched")
        )
    )
    with store.engine.connect() as conn:
        found = conn.execute(q).all()
    kind = pa.float64() if task == "regression" else pa.string()

    def values(i: int) -> pa.Array:
        raw = [r[i] for r in found]
        if task != "regression":
            return pa.array(raw, pa.string())
        return pa.array([_number(v) for v in raw], kind)

    labels = pa.table(
        {
            "prediction_id": pa.array([r[0] for r in found], pa.string()),
            PREDICTION: values(1),
            TARGET: values(2),
        }
    )
    if not found:
        return labels
    rows = window_rows(store, lake_dir, model, version, start, end, features)
    ids = pc.cast(rows.column("prediction_id"), pa.string())
    rows = rows.set_column(rows.column_names.index("prediction_id"), "prediction_id", ids)
    keep = [c for c in rows.column_names if c in features or c == "prediction_id"]
    joined = labels.join(rows.select(keep), "prediction_id", join_type="inner")
    return joined.sort_by("prediction_id")


def _number(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


class WindowSlices:
    """The failing slices of a labelled whole-model window, from the lake at ``lake_dir``."""

    def __init__(self, lake_dir: Path) -> None:
        self.lake_dir = lake_dir
        self.windows_read = 0  # windows whose rows were read (tests count them)

    def __call__(self, store: Store, model: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """``wk_window_slices``' values for one bucket-profile row (with its
        ``performance_row``), or None: a segment's window, no labels yet, or no new label
        since its slices were kept."""
        perf = row.get("performance_row")
        if row["segment"] not in ("", "*") or perf is None or not perf["labels"]:
            return None
        version = row["version"]
        start = int(row["bucket"])
        if _kept_labels(store, model, version, start) == int(perf["labels"]):
            return None  # the same labelled rows (matched labels only ever join): kept as is
        schema, reference = store.reference(model, version)
        task = task_of(schema)
        end = start + int(row["granularity"])
        features = slice_features(reference)
        table = labelled_rows(store, self.lake_dir, model, version, start, end, features, task)
        self.windows_read += 1
        result = failing_slices(reference, table, TARGET, PREDICTION, task, dict(DEFAULTS), ALPHA)
        return {
            "model": model,
            "version": version,
            "window_start": start,
            "window_seconds": int(row["granularity"]),
            "computed_at": time.time(),
            "labels": int(perf["labels"]),
            "result": _plain(result.to_dict()),
        }


def _kept_labels(store: Store, model: str, version: str, start: int) -> int | None:
    """The labelled count the window's kept slices were computed from, or None."""
    ws = t.window_slices.c
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(ws.labels).where(
                (ws.model == model) & (ws.version == version) & (ws.window_start == start)
            )
        ).scalar()
    return None if found is None else int(found)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_slices(conn: sa.Connection, values: dict[str, Any]) -> None:
    """Replace a window's failing slices, in the caller's write transaction."""
    ws = t.window_slices.c
    conn.execute(
        t.window_slices.delete().where(
            (ws.model == values["model"])
            & (ws.version == values["version"])
            & (ws.window_start == values["window_start"])
        )
    )
    conn.execute(t.window_slices.insert().values(**values))


def slice_windows(store: Store, model: str, version: str | None = None) -> list[dict[str, Any]]:
    """The windows with failing slices kept, newest first: ``version``, ``window_start``,
    ``window_seconds``, ``labels``, ``reported`` (slices found), ``searched`` (False: too
    few labelled rows, or another ``reason`` stopped the search) and the first one's
    ``sentence`` (None when none was found)."""
    ws = t.window_slices.c
    q = sa.select(t.window_slices).where(ws.model == model)
    if version is not None:
        q = q.where(ws.version == version)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(ws.window_start.desc(), ws.version)).mappings().all()
    return [
        {
            "version": r["version"],
            "window_start": r["window_start"],
            "window_seconds": r["window_seconds"],
            "labels": r["labels"],
            "reported": len(r["result"]["slices"]),
            "searched": r["result"]["reason"] is None,
            "sentence": sentence(r["result"]),
        }
        for r in rows
    ]


def read_slices(
    store: Store, model: str, *, version: str | None = None, window: int | None = None
) -> dict[str, Any]:
    """One window's failing slices: the newest labelled window of ``version`` (default: the
    champion) unless ``window`` (its start) is given. :class:`NotFoundError` names what is
    missing (an unknown model or version answers as ``store.version`` does)."""
    info = store.model(model)
    version = version if version is not None else info.champion
    if version is None:
        raise NotFoundError(f"model {model!r} has no version yet")
    store.version(model, version)
    ws = t.window_slices.c
    q = sa.select(t.window_slices).where((ws.model == model) & (ws.version == version))
    if window is not None:
        q = q.where(ws.window_start == window)
    with store.engine.connect() as conn:
        row = conn.execute(q.order_by(ws.window_start.desc()).limit(1)).mappings().first()
    if row is None:
        which = "no labelled window" if window is None else f"no labelled window at {window}"
        raise NotFoundError(f"model {model!r} version {version!r} has {which} with slices")
    return dict(row)


def sentence(result: dict[str, Any]) -> str | None:
    """ "accuracy is worst in active=True, credit ≥ 700: 0.61 vs 0.82 elsewhere, n = 1,204"
    for a stored result's first slice; None when it found none."""
    if not result.get("slices"):
        return None
    first = result["slices"][0]
    s, r = first["slice"]["value"], first["rest"]["value"]
    metric = first["metric"]
    return (
        f"{metric} is worst in {first['description']}: {s:.3g} vs {r:.3g} elsewhere, "
        f"n = {first['n']:,}"
    )
