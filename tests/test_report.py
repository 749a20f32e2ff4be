"""compare(): the library entry point, end to end on real frames."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score

import watchkeeper
from watchkeeper.examples import DRIFTED, churn_example


@pytest.fixture(scope="module")
def churn() -> tuple[pa.Table, pa.Table]:
    return churn_example(reference_rows=20_000, current_rows=8_000)


@pytest.fixture(scope="module")
def churn_report(churn: tuple[pa.Table, pa.Table]) -> watchkeeper.Report:
    ref, cur = churn
    return watchkeeper.compare(
        ref,
        cur,
        target="churned",
        prediction="churn_predicted",
        scores=["churn_score"],
        timestamp="event_time",
    )


def test_finds_exactly_the_drift_built_into_the_example(churn_report: watchkeeper.Report) -> None:
    assert sorted(churn_report.drifted_columns) == sorted(DRIFTED)
    for name in DRIFTED:
        d = churn_report.drift[name]
        assert d.drifted and d.statistic is not None and d.threshold is not None
        assert d.statistic > d.threshold and d.method in ("ks", "jensenshannon")
    # ids, timestamps, target and prediction are not drift features
    assert not {"customer_id", "event_time", "churned", "churn_predicted"} & set(churn_report.drift)


def test_columns_ranked_by_effect_size(churn_report: watchkeeper.Report) -> None:
    effects = [d.effect_size for d in churn_report.drift.values()]
    assert effects == sorted(effects, reverse=True)
    assert set(list(churn_report.drift)[: len(DRIFTED)]) == set(DRIFTED)


def test_performance_matches_scikit_learn(
    churn: tuple[pa.Table, pa.Table], churn_report: watchkeeper.Report
) -> None:
    _, cur = churn
    y = cur["churned"].to_numpy()
    p = cur["churn_predicted"].to_numpy()
    perf = churn_report.performance
    assert perf is not None and perf["task"] == "binary"
    assert perf["current"]["accuracy"]["value"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert perf["current"]["f1"]["value"] == pytest.approx(f1_score(y, p), abs=1e-12)
    auc = roc_auc_score(y, cur["churn_score"].to_numpy())
    assert (
        abs(perf["current"]["roc_auc"]["value"] - auc)
        <= perf["current"]["roc_auc_error_bound"] + 1e-12
    )
    assert perf["degraded"] is True
    assert any(f.kind == "performance_degraded" for f in churn_report.findings)


def test_regression_performance() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(10, 2, 3000)
    ref = pa.table({"x": rng.normal(size=3000), "y": y, "yhat": y + rng.normal(0, 1, 3000)})
    y2 = rng.normal(10, 2, 1000)
    cur = pa.table({"x": rng.normal(size=1000), "y": y2, "yhat": y2 + rng.normal(0, 2, 1000)})
    report = watchkeeper.compare(ref, cur, target="y", prediction="yhat")
    perf = report.performance
    assert perf["task"] == "regression" and perf["headline"] == "rmse"
    assert perf["current"]["mae"]["value"] == pytest.approx(
        mean_absolute_error(y2, cur["yhat"].to_numpy())
    )
    assert perf["degraded"] is True


def test_every_input_kind_gives_the_same_report(tmp_path, churn: tuple[pa.Table, pa.Table]) -> None:
    ref, cur = churn
    ref, cur = ref.drop_columns(["event_time"]), cur.drop_columns(["event_time"])
    pq.write_table(ref, tmp_path / "r.parquet")
    pq.write_table(cur, tmp_path / "c.parquet")
    ref.to_pandas().to_csv(tmp_path / "r.csv", index=False)
    cur.to_pandas().to_csv(tmp_path / "c.csv", index=False)
    inputs = [
        (ref, cur),
        (ref.to_pandas(), cur.to_pandas()),
        (pl.from_arrow(ref), pl.from_arrow(cur)),
        (str(tmp_path / "r.parquet"), tmp_path / "c.parquet"),
        (tmp_path / "r.csv", tmp_path / "c.csv"),
    ]
    results = [watchkeeper.compare(r, c).to_dict()["drift"] for r, c in inputs]
    first = {k: (v["drifted"], round(v["statistic"], 12)) for k, v in results[0].items()}
    for other in results[1:]:
        assert {k: (v["drifted"], round(v["statistic"], 12)) for k, v in other.items()} == first


def test_categorical_statistic_matches_scipy_chi2_contingency() -> None:
    rng = np.random.default_rng(3)
    ref = pa.table({"c": rng.choice(list("abcd"), 5000, p=[0.4, 0.3, 0.2, 0.1])})
    cur = pa.table({"c": rng.choice(list("abcde"), 2000, p=[0.35, 0.3, 0.2, 0.1, 0.05])})
    report = watchkeeper.compare(ref, cur, method="chisquare", decision="p_value")
    d = report.drift["c"]
    r_counts = pd.Series(ref["c"].to_numpy()).value_counts()
    c_counts = pd.Series(cur["c"].to_numpy()).value_counts()
    table = pd.concat([r_counts, c_counts], axis=1).fillna(0).to_numpy().T
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert d.statistic == pytest.approx(chi2, rel=1e-10)
    assert d.p_value == pytest.approx(p, rel=1e-6, abs=1e-300)
    assert d.drifted and d.threshold == 0.05


def test_odd_data_gives_findings_not_exceptions() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    ref = pa.table(
        {
            "all_null": pa.nulls(n, pa.float64()),
            "constant": np.full(n, 3.0),
            "some_null": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "cat": rng.choice(["a", "b"], n),
        }
    )
    cur = pa.table(
        {
            "all_null": pa.nulls(500, pa.float64()),
            "constant": np.full(500, 3.0),
            "some_null": np.where(rng.random(500) < 0.5, np.nan, rng.normal(size=500)),
            "cat": rng.choice(["a", "b", "zzz"], 500),
        }
    )
    report = watchkeeper.compare(ref, cur)
    kinds = {(f.column, f.kind) for f in report.findings}
    assert ("constant", "constant_column") in kinds
    assert ("some_null", "missing_share_change") in kinds
    assert ("cat", "unseen_categories") in kinds
    assert not report.drift["constant"].drifted
    json.loads(report.to_json())  # every value is JSON-safe (no NaN)

    empty = watchkeeper.compare(ref, cur.slice(0, 0))
    assert any(f.kind == "empty_current" for f in empty.findings)
    assert all(d.statistic is None and not d.drifted and d.note for d in empty.drift.values())


def test_missing_column_in_current_is_a_finding() -> None:
    ref = pa.table({"a": np.arange(100.0), "b": np.arange(100.0)})
    report = watchkeeper.compare(ref, pa.table({"a": np.arange(50.0)}))
    assert any(f.kind == "missing_column" and f.column == "b" for f in report.findings)


def test_method_and_decision_overrides_and_errors() -> None:
    rng = np.random.default_rng(2)
    ref = pa.table({"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)})
    cur = pa.table({"x": rng.normal(0.5, size=1000), "c": rng.choice(["a", "b"], 1000)})
    report = watchkeeper.compare(ref, cur, method={"x": "wasserstein", "categorical": "psi"})
    assert report.drift["x"].method == "wasserstein" and report.drift["c"].method == "psi"
    assert watchkeeper.compare(ref, cur, method="ks").drift["c"].method == "jensenshannon"
    fixed = watchkeeper.compare(
        ref, cur, method="psi", decision="threshold", thresholds={"psi": 0.2}
    )
    assert fixed.drift["x"].threshold == 0.2
    mixed = watchkeeper.compare(
        ref, cur, decision={"x": "p_value", "categorical": "threshold"}, method={"x": "ks"}
    )
    assert (mixed.drift["x"].decision, mixed.drift["x"].threshold) == ("p_value", 0.05)
    assert mixed.drift["c"].decision == "threshold" and mixed.drift["c"].threshold == 0.1
    with pytest.raises(watchkeeper.InputError, match="'x'"):
        watchkeeper.compare(ref, cur, method={"x": "chisquare_typo"})
    with pytest.raises(watchkeeper.InputError, match=r"'x'.*no p-value"):
        watchkeeper.compare(ref, cur, method={"x": "psi"}, decision={"x": "p_value"})
    with pytest.raises(watchkeeper.InputError, match="unknown column"):
        watchkeeper.compare(ref, cur, decision={"nope": "p_value"})
    with pytest.raises(watchkeeper.InputError, match="unknown column"):
        watchkeeper.compare(ref, cur, target="nope", prediction="x")
    with pytest.raises(watchkeeper.InputError, match="false_alarm_rate"):
        watchkeeper.compare(ref, cur, false_alarm_rate=2)


def test_reference_with_time_order_is_chunked(churn_report: watchkeeper.Report) -> None:
    ref, cur = churn_example(reference_rows=20_000, current_rows=2_000)
    report = watchkeeper.compare(ref, cur, timestamp="event_time")
    assert report.settings["reference_chunks"] == 10
    assert report.drift["age"].to_dict()["reference_chunks"] == 10


def test_schema_round_trip_and_override(tmp_path, churn: tuple[pa.Table, pa.Table]) -> None:
    ref, cur = churn
    schema = watchkeeper.infer_schema(ref, target="churned", prediction="churn_predicted")
    path = tmp_path / "schema.yaml"
    schema.save(path)
    loaded = watchkeeper.Schema.load(path)
    loaded.columns["num_products"].type = watchkeeper.ColumnType.NUMERIC
    report = watchkeeper.compare(ref, cur, schema=loaded)
    assert report.drift["num_products"].type == "numeric"


def test_html_and_json_outputs(tmp_path, churn_report: watchkeeper.Report) -> None:
    html = churn_report.save_html(tmp_path / "r.html").read_text()
    assert "income" in html and "<script" in html
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"<script[^>]+src=", html)  # plotly.js is inline: opens offline
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)
    data = json.loads(churn_report.save_json(tmp_path / "r.json").read_text())
    assert data["summary"]["n_drifted"] == len(DRIFTED)
    assert data["drift"]["income"]["drifted"] is True


def test_profiles_merge_to_the_unmerged_profile(churn: tuple[pa.Table, pa.Table]) -> None:
    ref, cur = churn
    whole = watchkeeper.profile_reference(ref, watchkeeper.infer_schema(ref))
    parts = [
        watchkeeper.profile_table(cur.slice(i, 2000), whole.schema, whole.spec)
        for i in range(0, 8000, 2000)
    ]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    direct = watchkeeper.profile_table(cur, whole.schema, whole.spec)
    for name, col in direct.columns.items():
        assert merged[name].counts.tolist() == col.counts.tolist()
        assert merged[name].nulls == col.nulls
    blob = merged.to_bytes()
    back = watchkeeper.DatasetProfile.from_bytes(blob)
    assert back["income"].counts.tolist() == direct["income"].counts.tolist()
    assert len(blob) < 60_000


def test_progress_bar_can_be_forced_on(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    ref = pa.table({"x": rng.normal(size=1000)})
    report = watchkeeper.compare(ref, ref, progress=True)
    assert report.drifted_columns == []


def test_threaded_profiling_equals_serial() -> None:
    rng = np.random.default_rng(9)
    n = 150_000
    table = pa.table(
        {
            **{f"x{i}": rng.normal(i, 1, n) for i in range(4)},
            "c": rng.choice(["a", "b", "c"], n),
        }
    )
    schema = watchkeeper.infer_schema(table)
    serial = watchkeeper.profile_reference(table, schema, threads=1)
    threaded = watchkeeper.profile_reference(table, schema, threads=2)
    assert serial.spec.to_dict() == threaded.spec.to_dict()
    for name, col in serial.columns.items():
        a, b = threaded[name].to_dict(), col.to_dict()
        a.pop("kll", None), b.pop("kll", None)  # KLL compaction is randomised; n must match
        assert a == b
        if name != "c":
            assert threaded[name].kll.n == col.kll.n == n


def test_p_value_decision_picks_methods_that_have_one() -> None:
    rng = np.random.default_rng(5)
    ref = pa.table({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    report = watchkeeper.compare(ref, ref, decision="p_value")
    assert report.drift["x"].method == "ks" and report.drift["c"].method == "chisquare"
    with pytest.raises(watchkeeper.InputError, match="no default fixed threshold"):
        watchkeeper.compare(ref, ref, method={"c": "chisquare"}, decision="threshold")


def test_reference_chunks_are_validated_and_used() -> None:
    rng = np.random.default_rng(6)
    ref = pa.table({"x": rng.normal(size=3000)})
    with pytest.raises(watchkeeper.InputError, match="reference_chunks"):
        watchkeeper.compare(ref, ref, reference_chunks=1)
    assert watchkeeper.compare(ref, ref, reference_chunks=3).settings["reference_chunks"] == 3


def test_a_given_schema_is_not_modified() -> None:
    rng = np.random.default_rng(7)
    ref = pa.table({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    schema = watchkeeper.infer_schema(ref)
    before = schema.to_dict()
    report = watchkeeper.compare(ref, ref, schema=schema, columns=["x"], target="y", prediction="x")
    assert schema.to_dict() == before
    assert report.schema["y"].role == watchkeeper.Role.TARGET


def test_a_columns_threshold_does_not_depend_on_the_other_columns() -> None:
    rng = np.random.default_rng(8)
    ref = pa.table({c: rng.normal(size=4000) for c in "abc"})
    cur = pa.table({c: rng.normal(size=1000) for c in "abc"})
    ref = ref.append_column("t", pa.array(np.arange(4000)))
    full = watchkeeper.compare(ref, cur, reference_chunks=8)
    alone = watchkeeper.compare(ref, cur, reference_chunks=8, columns=["b"])
    assert full.drift["b"].threshold == alone.drift["b"].threshold


# --------------------------------------------------------------------------- the drift gate


def _two_columns(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "c": rng.choice(["a", "b"], rows)})


def test_a_report_on_data_it_could_not_check_is_not_usable() -> None:
    """An empty current input or a missing drift column leaves "no drift" meaningless: the
    report says which columns were not checked and why, and ``drift_usable`` is false."""
    ref = _two_columns(2000)
    clean = watchkeeper.compare(ref, _two_columns(500, seed=1))
    assert clean.drift_usable and clean.unchecked == {} and sorted(clean.checked) == ["c", "x"]
    assert clean.to_dict()["summary"]["drift_usable"] is True

    empty = watchkeeper.compare(ref, ref.iloc[:0])
    assert empty.checked == [] and not empty.drift_usable and not empty.drifted_columns
    assert empty.unchecked == {
        "x": "no values in the current data",
        "c": "no values in the current data",
    }
    summary = empty.to_dict()["summary"]
    assert summary["drift_usable"] is False and set(summary["unchecked_columns"]) == {"x", "c"}

    missing = watchkeeper.compare(ref, _two_columns(500, seed=1).drop(columns=["x"]))
    assert missing.checked == ["c"] and missing.unchecked == {"x": "missing from the current data"}
    assert not missing.drift_usable

    all_null = watchkeeper.compare(ref, _two_columns(500, seed=1).assign(x=np.nan))
    assert all_null.unchecked == {"x": "no values in the current data"}
    assert not all_null.drift_usable


def test_one_name_given_as_a_string_is_one_column() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    y = rng.integers(0, 2, n)
    proba = np.clip(y * 0.6 + rng.random(n) * 0.4, 0, 1)
    ref = pd.DataFrame(
        {"x": rng.normal(size=n), "z": rng.normal(size=n), "y": y, "p": (proba > 0.5).astype(int)}
    ).assign(proba=proba)
    as_list = watchkeeper.compare(ref, ref, target="y", prediction="p", scores=["proba"])
    as_str = watchkeeper.compare(ref, ref, target="y", prediction="p", scores="proba")
    assert [c.name for c in as_str.schema.by_role("score")] == ["proba"]
    assert as_str.performance is not None and as_list.performance is not None
    assert as_str.performance["current"]["roc_auc"] == as_list.performance["current"]["roc_auc"]

    one = watchkeeper.compare(ref, ref, columns="z")
    assert list(one.drift) == ["z"]
    schema = watchkeeper.infer_schema(ref, segments="p", exclude="x", scores="proba")
    assert schema["p"].role.value == "segment" and not schema["x"].drift
    for bad in (3, [b"proba"], {"proba": 1}):
        with pytest.raises(watchkeeper.InputError, match="scores"):
            watchkeeper.compare(ref, ref, target="y", prediction="p", scores=bad)  # type: ignore[arg-type]


def test_a_target_absent_from_the_current_data_is_expected() -> None:
    """Labels come late: a current frame without its target (or with the target still empty)
    gets info findings, not a critical missing column; a message names only absent columns."""
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {"x": rng.normal(size=2000), "y": rng.integers(0, 2, 2000), "p": rng.integers(0, 2, 2000)}
    )
    cur = ref.drop(columns=["y"])
    report = watchkeeper.compare(ref, cur, target="y", prediction="p")
    assert [f for f in report.findings if f.severity != "info"] == []
    kinds = {f.kind: f for f in report.findings}
    assert "missing_column" not in kinds and kinds["missing_target"].column == "y"
    no_labels = kinds["no_labels"].message
    assert "'y'" in no_labels and "'p'" not in no_labels
    assert report.performance is not None and report.performance["current"] is None
    assert report.drift_usable  # the target is no drift column: drift was fully checked

    unlabelled = watchkeeper.compare(ref, ref.assign(y=None), target="y", prediction="p")
    assert [f for f in unlabelled.findings if f.severity != "info"] == []
    assert any(f.kind == "all_missing" and f.column == "y" for f in unlabelled.findings)

    # a prediction (not a target) that is missing stays a critical finding
    no_prediction = watchkeeper.compare(ref, ref.drop(columns=["p"]), target="y", prediction="p")
    critical = [f for f in no_prediction.findings if f.severity == "critical"]
    assert [(f.column, f.kind) for f in critical] == [("p", "missing_column")]
    message = next(f.message for f in no_prediction.findings if f.kind == "no_labels")
    assert "'p'" in message and "'y'" not in message
