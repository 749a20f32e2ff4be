"""A window's multivariate drift: ``multivariate_pca``, the PCA reconstruction error of its
rows against the version's reference (``docs/multivariate.md``).

The PCA is fitted once, when the version is registered (``ingest.registry``), and kept with
it (``wk_model_versions.reference_multivariate``, :mod:`watchkeeper.multivariate.state`). A
profile cannot give a joint distribution, so a window's rows are read from the Parquet lake:
the prediction index names the batches with events in the window (``ix_wk_predictions_bucket``),
their files are read (the window's features, event time and id only) and the window's events
kept, each id once. At most ``CURRENT_ROWS`` of them (a random sample, as ``compare()`` takes)
are scored; the decision is the one ``compare()`` gives on the same rows against the same fit.

Only the whole model's windows get it (not a segment's), against the version's training
reference (also for a model whose univariate drift compares windows with the one before).
A version without a PCA state (registered before the service kept one, or without two
varying features) gets no point. The point's ``detail`` has the threshold, the decision and
the PCA's figures; a window whose events the lake no longer has (retention) gets a point
without a value and a ``note``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from watchkeeper.evaluation.window_drift import ALPHA, VersionState, point
from watchkeeper.multivariate.state import PcaState
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

METRIC = "multivariate_pca"
BATCH_FILE = re.compile(r"batch-(\d+)-\d+\.parquet")


class JointDrift:
    """The ``multivariate_pca`` series (a ``WindowSeries``): one point per whole-model
    window of a version that has a PCA state."""

    def __init__(self, lake_dir: Path) -> None:
        self.lake_dir = lake_dir
        self.states = VersionState(Store.reference_multivariate, PcaState.from_bytes)
        self.windows_read = 0  # windows whose rows were read from the lake (tests count them)

    def state(self, store: Store, model: str, version: str) -> PcaState | None:
        return self.states.get(store, model, version)

    def __call__(self, store: Store, model: str, row: dict[str, Any]) -> list[dict[str, Any]]:
        if row["segment"] not in ("", "*"):
            return []
        state = self.state(store, model, row["version"])
        if state is None:
            return []
        schema, _ = store.reference(model, row["version"])
        start = int(row["bucket"])
        end = start + int(row["granularity"])
        rows = window_rows(
            store, self.lake_dir, model, row["version"], start, end, state.encoder.columns
        )
        self.windows_read += 1
        result = state.judge(schema, rows, ALPHA)
        detail = {
            "threshold": result.threshold,
            "drifted": result.drifted,
            "method": "pca",
            "reference_value": result.reference_value,
            "window_rows": rows.num_rows,
            **result.details,
            "reference": "training",
            "note": result.note,
        }
        return [point(METRIC, "", result.statistic, detail)]


def window_rows(
    store: Store,
    lake_dir: Path,
    model: str,
    version: str,
    start: int,
    end: int,
    columns: list[str],
) -> pa.Table:
    """The events of ``version`` with an event time in ``[start, end)`` from the lake: their
    ``columns`` (those a file has), ``prediction_id`` and ``event_time``, each id once."""
    p = t.predictions.c
    q = (
        sa.select(p.batch_id)
        .where((p.model == model) & (p.bucket >= start) & (p.bucket < end) & (p.version == version))
        .distinct()
    )
    with store.engine.connect() as conn:
        batches = {int(b) for b in conn.execute(q).scalars()}
    root = lake_dir / f"model={model}" / f"version={version}"
    paths = []
    if batches and root.is_dir():
        for path in sorted(root.glob("date=*/batch-*.parquet")):
            found = BATCH_FILE.fullmatch(path.name)
            if found is not None and int(found.group(1)) in batches:
                paths.append(path)
    parts = []
    wanted = ["prediction_id", "event_time", *columns]
    for path in paths:
        try:
            names = set(pq.read_schema(path).names)
            table = pq.read_table(path, columns=[c for c in wanted if c in names])
        except FileNotFoundError:  # retention removed it since the listing
            continue
        times = table.column("event_time")
        parts.append(table.filter(pc.and_(pc.greater_equal(times, start), pc.less(times, end))))
    if not parts:
        return pa.table({"prediction_id": pa.array([], pa.string())})
    table = pa.concat_tables(parts, promote_options="permissive")
    ids = pc.cast(table.column("prediction_id"), pa.string())
    if pc.count_distinct(ids).as_py() < table.num_rows:  # a batch id reused: each id once
        first = pa.table({"id": ids, "i": pa.array(range(table.num_rows))})
        keep = first.group_by("id").aggregate([("i", "min")]).column("i_min").to_numpy()
        table = table.take(pa.array(np.sort(keep)))
    return table
