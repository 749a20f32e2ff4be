"""``Reference.analyze``: each chunk's result is exactly ``compare()`` of that chunk; the
Timeline's tidy frame, alerts, figures and pages."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import watchkeeper
from tests.analysis.test_reference import _frame, _same
from watchkeeper import InputError, Reference
from watchkeeper.analysis.chunks import parse_period

OPTIONS = {"target": "y", "prediction": "p", "scores": "s", "timestamp": "ts"}


@pytest.fixture(scope="module")
def ref_df() -> pd.DataFrame:
    return _frame(10_000, 21)


@pytest.fixture(scope="module")
def fitted(ref_df: pd.DataFrame) -> Reference:
    return Reference.fit(ref_df, **OPTIONS)


@pytest.fixture(scope="module")
def production() -> pd.DataFrame:
    # two quiet weeks then a shift in x, and labels missing from the last rows
    quiet, shifted = _frame(3000, 22), _frame(1500, 23, 0.6)
    shifted["ts"] = shifted["ts"] + pd.Timedelta(days=31)
    data = pd.concat([quiet, shifted], ignore_index=True)
    data.loc[4200:, "y"] = np.nan
    return data


@pytest.mark.parametrize(
    "chunking", [{"chunk_size": 1000}, {"chunk_number": 4}, {"chunk_period": "1W"}]
)
def test_each_chunk_is_compare_of_that_chunk(
    ref_df: pd.DataFrame, fitted: Reference, production: pd.DataFrame, chunking: dict[str, object]
) -> None:
    timeline = fitted.analyze(production, **chunking)  # type: ignore[arg-type]
    assert len(timeline) >= 4
    ordered = production.sort_values("ts", kind="stable").reset_index(drop=True)
    source = ordered if "chunk_period" in chunking else production
    assert sum(c.rows for c in timeline.chunks) == len(production)
    for chunk, report in zip(timeline.chunks, timeline.reports, strict=True):
        rows = source.iloc[chunk.start_index : chunk.end_index].reset_index(drop=True)
        _same(report, watchkeeper.compare(ref_df, rows, **OPTIONS))


def test_chunks_by_period_follow_the_calendar(fitted: Reference, production: pd.DataFrame) -> None:
    timeline = fitted.analyze(production, chunk_period="1D")
    days = production["ts"].dt.floor("D")
    assert [c.rows for c in timeline.chunks] == days.value_counts().sort_index().tolist()
    first = timeline.chunks[0]
    assert first.start == days.min().to_pydatetime()
    assert first.end - first.start == pd.Timedelta(days=1)


def test_the_tidy_frame_and_the_alerts(fitted: Reference, production: pd.DataFrame) -> None:
    timeline = fitted.analyze(production, chunk_size=1500)
    frame = timeline.to_pandas()
    assert list(frame.columns)[:4] == ["chunk", "key", "start", "end"]
    estimated = {f"estimated_{m}" for m in ("accuracy", "precision", "recall", "f1")}
    estimated |= {"estimated_specificity", "estimated_roc_auc"}  # a classifier with scores
    assert (
        set(frame["metric"])
        == {
            "drift",
            "drift_share",
            "missing_share",
            "accuracy",
            "multivariate_pca",
            "failing_slices",
        }
        | estimated
    )
    drift_x = frame[(frame["metric"] == "drift") & (frame["column"] == "x")]
    assert drift_x["alert"].tolist() == [False, False, True]  # the shift is in the last chunk
    assert drift_x["value"].tolist() == [r.drift["x"].statistic for r in timeline.reports]
    alerts = timeline.alerts()
    assert alerts["alert"].all() and len(alerts) == int(frame["alert"].sum())
    assert ("x", "drift", 2) in set(
        zip(alerts["column"], alerts["metric"], alerts["chunk"], strict=True)
    )
    # the last chunk's labels are partly missing: performance only where labels exist
    accuracy = frame[frame["metric"] == "accuracy"]
    assert accuracy["threshold"].nunique() == 1 and accuracy["value"].notna().all()
    # the failing slices of each labelled chunk: a count, never an alert by itself
    found = frame[frame["metric"] == "failing_slices"]
    assert found["chunk"].tolist() == accuracy["chunk"].tolist() and not found["alert"].any()
    assert found["value"].tolist() == [
        len(r.failing_slices.slices) for r in timeline.reports if r.failing_slices is not None
    ]
    polars = pytest.importorskip("polars")
    assert polars is not None and timeline.to_polars().shape == frame.shape


def test_plots_and_pages(fitted: Reference, production: pd.DataFrame, tmp_path: Path) -> None:
    timeline = fitted.analyze(production, chunk_period="W")
    fig = timeline.plot("drift", column="x")
    names = [t.name for t in fig.data]
    assert names[:2] == ["x", "x: threshold"] and "x: alert" in names
    assert len(timeline.plot("drift").data) >= 4  # a line per drift column
    html = timeline._repr_html_()
    assert html.count("<tr>") == len(timeline) + 1 and "<script" not in html
    page = timeline.save_html(tmp_path / "timeline.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page and not re.search(r"<script[^>]+src=", page)
    # a figure per drift column, drift share, missing share, accuracy, multivariate_pca, the
    # estimated accuracy (with the realized one) and failing_slices
    assert page.count('class="plot"') == len(timeline.reports[0].drift) + 6
    assert "accuracy: realized" in page
    saved = timeline.save_json(tmp_path / "timeline.json").read_text(encoding="utf-8")
    assert '"chunk_period": "W"' in saved


def test_bad_chunking_is_refused(fitted: Reference, production: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="exactly one of"):
        fitted.analyze(production)
    with pytest.raises(InputError, match="chunk_size, chunk_number"):
        fitted.analyze(production, chunk_size=10, chunk_number=3)
    with pytest.raises(InputError, match="chunk_size must be"):
        fitted.analyze(production, chunk_size=0)
    with pytest.raises(InputError, match="chunk_period 'fortnight'"):
        fitted.analyze(production, chunk_period="fortnight")
    with pytest.raises(InputError, match="metric 'nope'"):
        fitted.analyze(production, chunk_number=2).plot("nope")
    untimed = Reference.fit(_frame(2000, 3).drop(columns=["ts"]))
    with pytest.raises(InputError, match="needs a timestamp column"):
        untimed.analyze(pa.table({"x": [1.0, 2.0]}), chunk_period="1D")


def test_periods_parse() -> None:
    assert parse_period("1D") == (1, "day")
    assert parse_period("6h") == (6, "hour")
    assert parse_period("W") == (1, "week")
    assert parse_period("months") == (1, "month")
    with pytest.raises(InputError, match="units"):
        parse_period("0D")
