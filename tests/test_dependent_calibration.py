"""The calibrated decision's 1 % per-column false-alarm rate on references whose rows are not
independent (AR(1), clustered, seasonal; no timestamp, no ``reference_chunks``), and nothing
changed on independent rows.

Every current window is more rows of the reference's process, so every flagged column is a
false alarm; the count must lie inside the 99.9 % binomial band of the stated rate. Before
the row-order test, these references were calibrated as i.i.d. rows and alarmed on 4-16 %
of the columns (``benchmarks/dependence.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps

import watchkeeper
from tests import dependent_data
from watchkeeper.calibration_chunks import CHUNKS, IID
from watchkeeper.profiles import profile_reference, profile_table
from watchkeeper.schema import infer_schema
from watchkeeper.stats.drift import column_drift

RATE = 0.01
Make = Callable[[int], tuple[pa.Table, pa.Table]]


def _flags(make: Make, trials: int) -> tuple[int, int]:
    flags = cells = 0
    for seed in range(trials):
        ref, cur = make(seed)
        report = watchkeeper.compare(ref, cur, false_alarm_rate=RATE)
        assert all(d.calibration_basis == CHUNKS for d in report.drift.values())
        flags += len(report.drifted_columns)
        cells += len(report.checked)
    return flags, cells


@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda s: dependent_data.ar1(s, phi=0.3),
        lambda s: dependent_data.ar1(s, phi=0.7),
        dependent_data.clustered,
        dependent_data.seasonal,
    ],
    ids=["ar1-0.3", "ar1-0.7", "clustered", "seasonal"],
)
def test_false_alarm_rate_holds_on_dependent_rows(make: Make) -> None:
    flags, cells = _flags(make, 60)
    assert flags <= sps.binom.ppf(0.999, cells, RATE), (flags, cells)


def test_clustered_rows_are_calibrated_on_chunks() -> None:
    """A census-like extract sorted by cluster: the quick check of the slow test above."""
    flags, cells = _flags(dependent_data.clustered, 12)
    assert flags <= sps.binom.ppf(0.999, cells, RATE), (flags, cells)


def test_independent_rows_keep_the_iid_calibration_to_the_last_bit() -> None:
    """When the test does not fire, every figure is column_drift's without chunks."""
    ref, cur = dependent_data.iid(5, n=8000, m=2000, shift=0.05)
    report = watchkeeper.compare(ref, cur)
    schema = infer_schema(ref)
    ref_p = profile_reference(ref, schema, kll_k=0)
    cur_p = profile_table(cur, schema, ref_p.spec)
    for name, got in report.drift.items():
        assert got.calibration_basis == IID
        assert got.calibration_reason is not None and "no dependence" in got.calibration_reason
        want = column_drift(name, ref_p[name], cur_p[name], seed=0, noise_cache={})
        got.calibration_basis = got.calibration_reason = None
        assert got.to_dict() == want.to_dict()
    assert all(not d["dependent"] for d in report.settings["row_dependence"].values())


def test_iid_power_is_kept() -> None:
    """A 0.1 standard-deviation shift at 20,000 vs 1,000 rows is found as often as before."""
    found = 0
    for seed in range(10):
        ref, cur = dependent_data.iid(seed, shift=0.15)
        report = watchkeeper.compare(ref, cur)
        found += sum(report.drift[f"x{i}"].drifted for i in range(dependent_data.COLUMNS))
    assert found >= 30  # 40 shifted column-trials


def test_the_report_says_why_a_column_was_calibrated_on_chunks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref, cur = dependent_data.clustered(0)
    report = watchkeeper.compare(ref, cur)
    entry = report.to_dict()["drift"]["x0"]
    assert entry["calibration_basis"] == CHUNKS and entry["reference_chunks"] == 20
    assert entry["calibration_reason"].startswith("rows are dependent (")
    assert report.settings["row_dependence"]["x0"]["dependent"] is True
    html = report.save_html(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "rows are dependent" in html
    # a window too large for chunks: still i.i.d., and the report says so
    big = watchkeeper.compare(ref, ref.slice(0, 8000))
    assert big.drift["x0"].calibration_basis == IID
    assert "fewer than 4 windows" in (big.drift["x0"].calibration_reason or "")


def test_a_fitted_reference_tests_its_rows_once_and_keeps_the_result(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref_t, cur = dependent_data.ar1(1, phi=0.5)
    ref = watchkeeper.Reference.fit(ref_t)
    assert ref.dependence is not None and all(d.dependent for d in ref.dependence.values())
    got, want = ref.compare(cur).to_dict(), watchkeeper.compare(ref_t, cur).to_dict()
    for d in (got, want):
        d.pop("created_at")
    assert got == want
    loaded = watchkeeper.Reference.load(ref.save(tmp_path / "ref"))
    assert loaded.dependence == ref.dependence
    again = loaded.compare(cur).to_dict()
    again.pop("created_at")
    assert again == want
    # a timestamp orders the reference: no row-order test, every column on chunks as before
    stamped = ref_t.append_column("ts", pa.array(np.arange(ref_t.num_rows).astype("datetime64[s]")))
    assert watchkeeper.Reference.fit(stamped).dependence is None


def test_a_window_too_large_to_chunk_the_reference_skips_the_row_order_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a current frame of more than a quarter of the reference's rows, the reference
    could not be chunked whatever its row order: ``compare()`` does not test it (at a million
    rows the test cost more than the rest of ``compare()``), and says so per column; a
    fitted Reference, which tested its rows once, reports the same."""
    import watchkeeper.report as report_module

    calls: list[int] = []
    real = report_module.row_dependence_of
    monkeypatch.setattr(
        report_module,
        "row_dependence_of",
        lambda *a, **k: calls.append(1) or real(*a, **k),
    )
    ref, _ = dependent_data.clustered(0)
    cur = ref.slice(0, ref.num_rows // 2)
    report = watchkeeper.compare(ref, cur, false_alarm_rate=RATE)
    assert calls == []
    reasons = {d.calibration_reason for d in report.drift.values()}
    assert reasons == {
        "row order not tested: the reference holds fewer than 4 windows of this size, "
        "so it could not be chunked anyway"
    }
    assert all(d.calibration_basis == IID for d in report.drift.values())
    fitted = watchkeeper.Reference.fit(ref, false_alarm_rate=RATE).compare(cur).to_dict()
    direct = report.to_dict()
    fitted.pop("created_at"), direct.pop("created_at")
    assert fitted == direct
    small = watchkeeper.compare(ref, ref.slice(0, 500), false_alarm_rate=RATE)
    assert calls == [1] and small.to_dict()["settings"]["row_dependence"]
