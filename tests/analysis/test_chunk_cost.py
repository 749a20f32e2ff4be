"""What ``Reference.analyze`` computes once per chunk size, and what it leaves until read.

Everything that depends only on the reference and the chunks' size (the PCA's no-drift band,
from a bootstrap drawn once per fit; each column's calibrated threshold) is computed once per
size and reused by the chunks of that size; the exact KS p-value, which no calibrated decision reads, is computed
when a report is read. These tests count that work; that the reports are the same as
``compare()`` per chunk is ``tests/analysis/test_timeline.py``'s check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from scipy import stats as sps

import watchkeeper.multivariate.drift as mv
from tests.analysis.test_reference import _frame
from watchkeeper import Reference
from watchkeeper.multivariate.reconstruction import BootstrapNull
from watchkeeper.stats import drift

# five chunks of 1,000 rows and a last one of 500: two sizes
ROWS, CHUNK, SIZES = 5500, 1000, 2


def _counting(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    calls: list[int] = []
    inner: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    current = _frame(ROWS, 32, 0.3, task="none")
    current["ts"] = current["ts"] + pd.Timedelta(days=31)
    return _frame(20_000, 31, task="none"), current


def test_the_pca_threshold_is_simulated_once_per_chunk_size(
    frames: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, current = frames
    ref = Reference.fit(reference, timestamp="ts", multivariate="pca")
    drawn = _counting(monkeypatch, mv, "BootstrapNull")  # the bootstrap: once per fit
    calls = _counting(monkeypatch, BootstrapNull, "threshold")  # the band: once per size
    timeline = ref.analyze(current, chunk_size=CHUNK)
    assert len(timeline.reports) == 6
    assert len(calls) == SIZES and len(drawn) == 1
    ref.analyze(current, chunk_size=CHUNK)  # a second period of the same sizes: none again
    assert len(calls) == SIZES and len(drawn) == 1


def test_each_column_is_calibrated_once_per_chunk_size(
    frames: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, current = frames
    ref = Reference.fit(reference, timestamp="ts", multivariate=None)
    companion = _counting(monkeypatch, drift, "null_samples")  # KS with Anderson–Darling
    alone = _counting(monkeypatch, drift, "null_threshold")  # the other methods
    timeline = ref.analyze(current, chunk_size=CHUNK)
    # a calibration is of the column's values in the chunk: a column with missing values gets
    # one per count of values, a full column (x, k) one per chunk size
    sizes = {(n, d.method, d.n_current) for r in timeline.reports for n, d in r.drift.items()}
    assert {(n, c) for n, m, c in sizes if n in ("x", "k")} == {
        (n, c) for n in ("x", "k") for c in (CHUNK, ROWS % CHUNK)
    }
    assert len(companion) == sum(m == "ks" for _, m, _ in sizes)
    assert len(alone) == sum(m != "ks" for _, m, _ in sizes)
    assert len(companion) + len(alone) < sum(len(r.drift) for r in timeline.reports)


def test_the_exact_ks_p_value_is_computed_when_read(
    frames: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, current = frames
    ref = Reference.fit(reference, timestamp="ts", multivariate=None)
    calls = _counting(monkeypatch, sps.kstwo, "sf")
    timeline = ref.analyze(current, chunk_size=CHUNK)
    assert timeline.reports[-1].drifted_columns  # decisions, without a p-value
    assert calls == []
    first = timeline.reports[0].drift["x"]
    n_eff = round(first.n_reference * first.n_current / (first.n_reference + first.n_current))
    assert first.statistic is not None
    assert first.p_value == float(sps.kstwo.sf(first.statistic, n_eff))  # scipy's own
    as_dicts = [r.to_dict() for r in timeline.reports]
    ks = [d for r in as_dicts for d in r["drift"].values() if d["method"] == "ks"]
    assert all(isinstance(d["p_value"], float) for d in ks)
    assert len(calls) == len(ks) + 1  # each once: the one read above is kept
