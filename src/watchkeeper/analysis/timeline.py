"""The Timeline: a fitted reference compared with every chunk of a period.

Each chunk gets the very :class:`~watchkeeper.report.Report` that ``ref.compare(chunk)`` gives;
the Timeline lays them out over time: a tidy frame (one row per chunk × column × metric), the
alerts, plotly figures and a self-contained HTML page.

Metrics, one row each per chunk:

* ``drift`` per drift column: the statistic, its (calibrated) threshold, ``alert`` = drifted;
* ``drift_share`` for the dataset (column ``""``): the drifted share, the ``drift_share``
  setting as threshold, ``alert`` = dataset drift;
* ``missing_share`` per profiled column: the current share, the reference's share as
  threshold, ``alert`` = a warning that the missing share changed or all values are missing;
* ``multivariate_pca`` and ``multivariate_classifier`` for the dataset (column ``""``), when
  the reference checks them: the window's mean PCA reconstruction error or the domain
  classifier's ROC AUC, its calibrated threshold (the PCA's decision is two-sided: its
  no-drift band runs from ``lower_threshold`` to ``threshold``; ``lower_threshold`` is None
  on every other row), ``alert`` = the joint distribution changed
  (``method``: ``pca``, or ``classifier`` with the top two features by its permutation
  importance, ``classifier (income × age)``);
* the performance headline (``accuracy``, ``rmse``…) for the target when the chunk has labels:
  the value, the reference's value as threshold, ``alert`` = credibly worse than the reference;
* the estimated performance (docs/estimation.md), labels or not: ``estimated_accuracy``,
  ``estimated_roc_auc``, ``estimated_mae``… for the target, the estimate as value, the
  reference's realized value as threshold, ``alert`` = the estimate's interval lies wholly on
  the bad side of it; ``method`` = the interval's method;
* ``failing_slices`` for the target when the chunk has labels and the slices are on: how many
  slices do significantly worse than the rest of the chunk (``docs/slices.md``), the top one
  in ``method`` (``country=DE, income ≥ 80k: accuracy 0.61 vs 0.82 elsewhere, n = 1,204``),
  no threshold, ``alert`` False (a slice explains where the model fails; it is not an alarm:
  the performance headline is).
* ``attribution_drift`` for the dataset (column ``""``) when the reference has attributions
  (``docs/explain.md``): the largest standardised change of a feature's attributions, its
  calibrated threshold, ``alert`` = the model's reliance on its features moved, ``method``
  the sentence (with the surrogate's fidelity when a surrogate stands in for the model);
* ``drift_impact`` per drifted feature, in the order of the report's drift impact: drift
  effect size × the feature's share of the model's attribution as value, no threshold,
  ``alert`` False, ``method`` the sentence ("income drifted and carries 40 % of the model's
  attribution").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.analysis.chunks import Chunk, by_number, by_period, by_size
from watchkeeper.analysis.sources import open_source
from watchkeeper.analysis.stream import (
    Meter,
    scan_periods,
    stream_by_number,
    stream_by_period,
    stream_by_size,
)
from watchkeeper.errors import InputError
from watchkeeper.io import to_table
from watchkeeper.progress import Progress
from watchkeeper.report import Report, _json_safe
from watchkeeper.schema import Role

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from watchkeeper.reference import Reference

COLUMNS = (
    "chunk",
    "key",
    "start",
    "end",
    "start_index",
    "end_index",
    "rows",
    "column",
    "metric",
    "value",
    "threshold",
    "lower_threshold",
    "alert",
    "method",
    "calibration",
)
ALERT_KINDS = {"missing_share_change", "all_missing"}


def _timestamp(ref: Reference) -> str | None:
    if ref.options["timestamp"] is not None:
        return str(ref.options["timestamp"])
    stamps = ref.schema.by_role(Role.TIMESTAMP)
    return stamps[0].name if stamps else None


def analyze(
    ref: Reference,
    data: object,
    *,
    chunk_size: int | None = None,
    chunk_period: str | None = None,
    chunk_number: int | None = None,
    progress: bool | None = None,
    meter: Meter | None = None,
) -> Timeline:
    """``ref.analyze``: cut ``data`` into chunks and compare each with ``ref``. A path,
    directory, glob or ``pyarrow.dataset.Dataset`` is streamed (:mod:`.stream`); anything else
    is converted to one table first. ``meter`` counts what a streamed analysis held."""
    given = [
        n
        for n, v in (
            ("chunk_size", chunk_size),
            ("chunk_period", chunk_period),
            ("chunk_number", chunk_number),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise InputError(
            "give exactly one of chunk_size, chunk_period, chunk_number"
            + (f" (got {', '.join(given)})" if given else "")
        )
    stamp = _timestamp(ref)
    source = open_source(data, name="data")
    chunks: Iterable[Chunk]
    if source is None:
        table = to_table(data, name="data")
        rows: int | None = table.num_rows
        if chunk_size is not None:
            chunks = by_size(table, int(chunk_size), stamp)
        elif chunk_number is not None:
            chunks = by_number(table, int(chunk_number), stamp)
        else:
            chunks = by_period(table, str(chunk_period), stamp)
    else:
        meter = meter or Meter()
        if chunk_size is not None:
            rows = source.known_rows()
            chunks = stream_by_size(source, int(chunk_size), stamp, meter)
        elif chunk_number is not None:
            rows = source.count_rows()
            chunks = stream_by_number(source, int(chunk_number), stamp, meter, rows)
        else:
            scan = scan_periods(source, str(chunk_period), stamp, meter)
            assert stamp is not None
            rows = scan.rows
            chunks = stream_by_period(source, str(chunk_period), stamp, meter, scan)
    bare, reports = [], []
    with Progress(enabled=progress, rows=rows or 0) as bar:
        bar.start("analyzing chunks (rows)", rows)
        for chunk in chunks:  # a streamed chunk's rows are let go once it is compared
            assert chunk.table is not None
            reports.append(ref._compare_table(chunk.table))
            bare.append(_bare(chunk))
            bar.advance(chunk.rows)
    spec = {"chunk_size": chunk_size, "chunk_period": chunk_period, "chunk_number": chunk_number}
    return Timeline(bare, reports, spec, ref.rows)


def _bare(chunk: Chunk) -> Chunk:
    """The chunk without its rows: a Timeline keeps results, not data."""
    return Chunk(chunk.index, chunk.key, chunk.start_index, chunk.end_index, chunk.start, chunk.end)


class Timeline:
    """Per chunk, the Report of the chunk against the fitted reference."""

    def __init__(
        self,
        chunks: list[Chunk],
        reports: list[Report],
        chunking: dict[str, Any],
        reference_rows: int,
    ) -> None:
        self.chunks, self.reports = chunks, reports
        self.chunking, self.reference_rows = chunking, reference_rows

    def __len__(self) -> int:
        return len(self.chunks)

    def records(self) -> list[dict[str, Any]]:
        """The tidy rows (see the module's docstring), as dicts."""
        rows: list[dict[str, Any]] = []
        for chunk, report in zip(self.chunks, self.reports, strict=True):
            timed = chunk.start is not None
            base = {
                "chunk": chunk.index,
                "key": chunk.key,
                "start": chunk.start if timed else chunk.start_index,
                "end": chunk.end if timed else chunk.end_index,
                "start_index": chunk.start_index,
                "end_index": chunk.end_index,
                "rows": chunk.rows,
            }
            for row in _metric_rows(report):
                rows.append({**base, "lower_threshold": None, **row})
        return rows

    def to_pandas(self) -> pd.DataFrame:
        """One row per chunk × column × metric (``COLUMNS``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Timeline.to_pandas needs pandas: pip install 'watchkeeper[pandas]'"
            ) from None
        return pd.DataFrame(self.records(), columns=list(COLUMNS))

    def to_polars(self) -> Any:
        """The same frame as :meth:`to_pandas`, in polars (needs polars installed)."""
        try:
            import polars as pl
        except ImportError:
            raise ImportError(
                "Timeline.to_polars needs polars: pip install 'watchkeeper[polars]'"
            ) from None
        return pl.DataFrame(
            [{k: r[k] for k in COLUMNS} for r in self.records()], schema=list(COLUMNS)
        )

    def alerts(self) -> pd.DataFrame:
        """The rows of :meth:`to_pandas` whose metric crossed its decision."""
        frame = self.to_pandas()
        return frame[frame["alert"]].reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _json_safe(
            {
                "chunking": self.chunking,
                "reference_rows": self.reference_rows,
                "chunks": [
                    {**c.to_dict(), "summary": r.summary()}
                    for c, r in zip(self.chunks, self.reports, strict=True)
                ],
                "metrics": [
                    {
                        **r,
                        "start": _iso(r["start"]),
                        "end": _iso(r["end"]),
                    }
                    for r in self.records()
                ],
            }
        )
        return out

    def save_json(self, path: str | Path) -> Path:
        out = Path(path)
        out.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")
        return out

    def plot(self, metric: str = "drift_share", column: str | None = None) -> go.Figure:
        """A plotly figure of ``metric`` over the chunks: one line per column (or only
        ``column``), its threshold dashed, alerts marked."""
        from watchkeeper.analysis.timeline_plots import estimated_figure, metric_figure

        records = self.records()
        known = sorted({r["metric"] for r in records})
        if metric not in known:
            raise InputError(f"metric {metric!r}: this timeline has {known}")
        rows = [r for r in records if r["metric"] == metric]
        if column is not None:
            if column not in {r["column"] for r in rows}:
                raise InputError(f"column {column!r} has no {metric!r} in this timeline")
            rows = [r for r in rows if r["column"] == column]
        if metric.startswith("estimated_"):  # with the realized value where labels came
            plain = metric.removeprefix("estimated_")
            return estimated_figure(rows, [r for r in records if r["metric"] == plain], metric)
        return metric_figure(rows, metric)

    def save_html(self, path: str | Path) -> Path:
        """One self-contained, offline HTML page: the alerts and a figure per metric."""
        from watchkeeper.analysis.timeline_plots import render_timeline

        out = Path(path)
        out.write_text(render_timeline(self), encoding="utf-8")
        return out

    def _repr_html_(self) -> str:
        from watchkeeper.analysis.timeline_plots import summary_table

        return summary_table(self)

    def __repr__(self) -> str:
        n_alerts = sum(r["alert"] for r in self.records())
        return f"Timeline(chunks={len(self.chunks)}, alerts={n_alerts})"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _metric_rows(report: Report) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, d in report.drift.items():
        rows.append(
            {
                "column": name,
                "metric": "drift",
                "value": d.statistic,
                "threshold": d.threshold,
                "alert": bool(d.drifted),
                "method": d.method,
                # what the threshold was simulated from, and why
                "calibration": (
                    f"{d.calibration_basis}: {d.calibration_reason}"
                    if d.calibration_basis
                    else None
                ),
            }
        )
    rows.append(
        {
            "column": "",
            "metric": "drift_share",
            "value": report.drift_share if report.checked else None,
            "threshold": float(report.settings["drift_share"]),
            "alert": report.dataset_drift,
            "method": None,
            "calibration": None,
        }
    )
    joint = report.multivariate_drift
    for method, res in ({} if joint is None else joint.results).items():
        top = [name for name, imp in joint.drivers[:2] if imp > 0] if joint else []
        rows.append(
            {
                "column": "",
                "metric": f"multivariate_{method}",
                "value": res.statistic,
                "threshold": res.threshold,
                # the PCA's decision is two-sided: the band [lower_threshold, threshold]
                "lower_threshold": res.details.get("lower_threshold"),
                "alert": res.drifted,
                "method": f"{method} ({' × '.join(top)})"
                if method == "classifier" and top
                else f"{method} ({res.details['side']})"
                if res.details.get("side")
                else method,
                "calibration": None,
            }
        )
    warned = {f.column for f in report.findings if f.severity != "info" and f.kind in ALERT_KINDS}
    for name, q in report.quality.items():
        rows.append(
            {
                "column": name,
                "metric": "missing_share",
                "value": q["current"]["missing_share"],
                "threshold": q["reference"]["missing_share"],
                "alert": name in warned,
                "method": None,
                "calibration": None,
            }
        )
    perf = report.performance
    if perf and perf.get("current") and perf.get("headline"):
        h = perf["headline"]
        cur = (perf["current"].get(h) or {}).get("value")
        ref = ((perf.get("reference") or {}).get(h) or {}).get("value")
        rows.append(
            {
                "column": perf["target"],
                "metric": h,
                "value": cur,
                "threshold": ref,
                "alert": bool(perf.get("degraded")),
                "method": None,
                "calibration": None,
            }
        )
    est = report.estimated_performance
    if est:
        worse = set(est["worse_than_reference"])
        for name, m in est["metrics"].items():
            rows.append(
                {
                    "column": est["target"],
                    "metric": f"estimated_{name}",
                    "value": m["value"],
                    "threshold": est["reference"].get(name),
                    "alert": name in worse,
                    "method": m["ci_method"],
                    "calibration": None,
                }
            )
    found = report.failing_slices
    if perf and perf.get("current") and found is not None and found.reason is None:
        rows.append(
            {
                "column": perf["target"],
                "metric": "failing_slices",
                "value": len(found.slices),
                "threshold": None,
                "alert": False,
                "method": found.slices[0].sentence() if found.slices else None,
                "calibration": None,
            }
        )
    explained = report.attributions
    if explained is not None and explained.note is None:
        rows.append(
            {
                "column": "",
                "metric": "attribution_drift",
                "value": explained.features[0].score if explained.features else None,
                "threshold": explained.threshold,
                "alert": explained.drifted,
                "method": explained.message,
                "calibration": None,
            }
        )
    for impact in report.drift_impact:
        rows.append(
            {
                "column": impact.feature,
                "metric": "drift_impact",
                "value": impact.impact,
                "threshold": None,
                "alert": False,
                "method": impact.sentence(),
                "calibration": None,
            }
        )
    return rows
