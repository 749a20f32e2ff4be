"""The estimate in the report, the fitted reference and the timeline: ``compare()``'s
``estimated_performance`` (realized metrics checked against scikit-learn), the concept-drift
flag, the estimator fitted once by ``Reference.fit``, the ``estimated_*`` timeline metrics and
the HTML section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import watchkeeper as wk
from watchkeeper.estimation import CBPE, DLE
from watchkeeper.reference import Reference


def _binary(rng: np.random.Generator, n: int, shift: float = 0.0, flip: bool = False) -> pa.Table:
    x = rng.normal(shift, 1.0, n)
    truth = 1 / (1 + np.exp(-2 * x))
    y = (rng.uniform(size=n) < (1 - truth if flip else truth)).astype(int)
    score = 1 / (1 + np.exp(-3 * x))
    return pa.table({"x": x, "score": score, "pred": (score > 0.5).astype(int), "y": y})


def _regression(rng: np.random.Generator, n: int, low: float = 0.0) -> pa.Table:
    x = rng.uniform(low, 1.0, n)
    pred = np.sin(3 * x)
    return pa.table({"x": x, "pred": pred, "y": pred + rng.normal(0, 0.2 + x, n)})


OPTIONS = {"target": "y", "prediction": "pred", "scores": "score"}


def test_compare_estimates_and_sets_the_realized_metrics_next_to_them() -> None:
    rng = np.random.default_rng(0)
    ref, cur = _binary(rng, 8000), _binary(rng, 3000, shift=0.8)
    report = wk.compare(ref, cur, **OPTIONS)
    est = report.estimated_performance
    assert est is not None and est["method"] == "cbpe" and est["task"] == "binary"
    assert est["calibration"]["method"] == "isotonic" and est["calibration"]["needed"]
    y, p, s = (cur.column(n).to_numpy() for n in ("y", "pred", "score"))
    realized = est["realized"]
    assert realized["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert realized["precision"] == pytest.approx(precision_score(y, p))
    assert realized["recall"] == pytest.approx(recall_score(y, p))
    assert realized["f1"] == pytest.approx(f1_score(y, p))
    assert realized["specificity"] == pytest.approx(recall_score(y, p, pos_label=0))
    assert realized["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=2e-3)  # 1000 bins
    assert not est["concept_drift_suspected"] and est["outside_interval"] == []
    assert not any(f.kind == "estimate_disagrees" for f in report.findings)
    d = json.loads(report.to_json())["estimated_performance"]
    assert d["metrics"]["accuracy"]["value"] == pytest.approx(est["metrics"]["accuracy"]["value"])


def test_a_changed_relation_between_inputs_and_labels_is_flagged() -> None:
    rng = np.random.default_rng(1)
    report = wk.compare(_binary(rng, 8000), _binary(rng, 2000, flip=True), **OPTIONS)
    est = report.estimated_performance
    assert est is not None and est["concept_drift_suspected"]
    assert "accuracy" in est["outside_interval"]
    assert any(f.kind == "estimate_disagrees" for f in report.findings)


def test_without_labels_the_estimate_stands_alone() -> None:
    rng = np.random.default_rng(2)
    cur = _binary(rng, 2000, shift=-0.8).drop(["y"])
    report = wk.compare(_binary(rng, 8000), cur, **OPTIONS)
    est = report.estimated_performance
    assert est is not None and est["realized"] is None and not est["concept_drift_suspected"]
    assert est["metrics"]["accuracy"]["value"] is not None


def test_regression_is_estimated_by_dle() -> None:
    rng = np.random.default_rng(3)
    report = wk.compare(
        _regression(rng, 4000), _regression(rng, 2000, low=0.5), target="y", prediction="pred"
    )
    est = report.estimated_performance
    assert est is not None and est["method"] == "dle" and est["headline"] == "mae"
    m = est["metrics"]["mae"]
    assert m["ci_low"] <= est["realized"]["mae"] <= m["ci_high"]
    assert est["error_model"]["rows"] == 2000


def test_a_classifier_without_scores_has_no_estimate_and_no_finding_about_it() -> None:
    rng = np.random.default_rng(4)
    report = wk.compare(_binary(rng, 500), _binary(rng, 500), target="y", prediction="pred")
    assert report.estimated_performance is None
    assert not any(f.kind == "no_estimate" for f in report.findings)


def test_the_fitted_reference_fits_the_estimator_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fit = CBPE.fit.__func__  # type: ignore[attr-defined]

    def counting(cls: type[CBPE], *args: object, **kwargs: object) -> CBPE:
        calls.append(1)
        return fit(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(CBPE, "fit", classmethod(counting))
    rng = np.random.default_rng(5)
    data = _binary(rng, 6000)
    ref = Reference.fit(data, **OPTIONS)
    assert len(calls) == 1
    a = ref.compare(_binary(rng, 1000, shift=0.5))
    ref.analyze(_binary(rng, 3000), chunk_size=1000)
    assert len(calls) == 1
    b = wk.compare(data, _binary(np.random.default_rng(6), 1000, shift=0.5), **OPTIONS)
    assert len(calls) == 2
    assert a.estimated_performance is not None and b.estimated_performance is not None


def test_a_window_without_the_prediction_fits_no_estimator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``compare()`` of a regression reference with a window that has no prediction column (a
    drift check of the inputs) fits no DLE (two gradient-boosting models) and says why, as a
    fitted Reference, whose DLE is fitted once, says it; a window with its predictions is
    still estimated."""
    calls = []
    fit = DLE.fit.__func__  # type: ignore[attr-defined]

    def counting(cls: type[DLE], *args: object, **kwargs: object) -> DLE:
        calls.append(1)
        return fit(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(DLE, "fit", classmethod(counting))
    rng = np.random.default_rng(12)
    ref, window = _regression(rng, 3000), _regression(rng, 1000).drop_columns(["pred"])
    options = {"target": "y", "prediction": "pred"}
    report = wk.compare(ref, window, **options)
    assert calls == [] and report.estimated_performance is None
    [note] = [f for f in report.findings if f.kind == "no_estimate"]
    assert note.message == "the current data has no ['pred'] column: no performance estimate"
    fitted = Reference.fit(ref, **options)
    assert len(calls) == 1
    [same] = [f for f in fitted.compare(window).findings if f.kind == "no_estimate"]
    assert same.message == note.message and len(calls) == 1
    assert wk.compare(ref, _regression(rng, 1000), **options).estimated_performance is not None
    assert len(calls) == 2


def test_the_timeline_has_the_estimated_metrics_and_alerts_on_a_degradation() -> None:
    rng = np.random.default_rng(7)
    ref = Reference.fit(_binary(rng, 8000), **OPTIONS)
    # the model is least sure near x = 0: a shift there lowers the expected accuracy
    near = _binary(rng, 2000, shift=0.0)
    x = rng.normal(0.0, 0.25, 2000)
    score = 1 / (1 + np.exp(-3 * x))
    hard = pa.table({"x": x, "score": score, "pred": (score > 0.5).astype(int)})
    data = pa.concat_tables([near.drop(["y"]), hard])
    frame = ref.analyze(data, chunk_size=1000).to_pandas()
    acc = frame[frame["metric"] == "estimated_accuracy"].reset_index(drop=True)
    assert list(acc["alert"]) == [False, False, True, True]
    assert set(acc["method"]) == {"cbpe-delta"}
    names = set(frame["metric"])
    assert {
        f"estimated_{m}" for m in ("precision", "recall", "f1", "specificity", "roc_auc")
    } <= names
    fig = ref.analyze(data, chunk_size=1000).plot("estimated_accuracy")
    assert len(fig.data) >= 2


def test_the_html_report_has_the_estimated_section(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    report = wk.compare(_binary(rng, 8000), _binary(rng, 2000, flip=True), **OPTIONS)
    html = report.save_html(tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="estimated"' in html and "concept drift suspected" in html
    assert "Specificity" in html and 'href="#estimated"' in html
    assert "Rows <b>2,000</b>" in html or "Rows <b>2000</b>" in html  # the count, not the table


def test_the_cli_quality_gate_ignores_findings_about_the_model(tmp_path: Path) -> None:
    """The labels contradict the estimate (a model finding): ``--fail-on quality`` passes,
    the data being clean."""
    import pyarrow.parquet as pq

    from tests.test_cli import run

    rng = np.random.default_rng(9)
    pq.write_table(_binary(rng, 8000), tmp_path / "ref.parquet")
    pq.write_table(_binary(rng, 2000, flip=True), tmp_path / "cur.parquet")
    args = ["--target", "y", "--prediction", "pred", "--score", "score", "--quiet"]
    out = run(
        "report",
        tmp_path / "ref.parquet",
        tmp_path / "cur.parquet",
        *args,
        "-o",
        tmp_path / "r.json",
        "--fail-on",
        "quality",
    )
    findings = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["findings"]
    assert "estimate_disagrees" in {f["kind"] for f in findings}
    assert out.returncode == 0, out.stderr


def test_dle_reads_categorical_features() -> None:
    """The noise depends on a categorical feature only: a window of its noisy category is
    estimated near that category's error (the encoder's codes reach the gradient boosting)."""
    rng = np.random.default_rng(10)

    def frame(n: int, noisy_share: float) -> pa.Table:
        city = np.where(rng.uniform(size=n) < noisy_share, "paris", "lyon")
        x = rng.normal(size=n)
        sd = np.where(city == "paris", 2.0, 0.2)
        return pa.table({"x": x, "city": city, "pred": x, "y": x + rng.normal(0, sd)})

    report = wk.compare(frame(6000, 0.5), frame(1000, 1.0), target="y", prediction="pred")
    est = report.estimated_performance
    assert est is not None
    assert est["metrics"]["mae"]["value"] == pytest.approx(2.0 * np.sqrt(2 / np.pi), rel=0.1)
    assert (
        est["metrics"]["mae"]["ci_low"]
        <= est["realized"]["mae"]
        <= est["metrics"]["mae"]["ci_high"]
    )


def test_a_saved_and_loaded_reference_estimates_the_same(tmp_path: Path) -> None:
    """The estimator is not saved: a loaded reference fits it again, deterministically."""
    rng = np.random.default_rng(11)
    ref = Reference.fit(_binary(rng, 6000), **OPTIONS)
    cur = _binary(rng, 1000, shift=0.5)
    loaded = Reference.load(ref.save(tmp_path / "ref"))
    assert loaded.compare(cur).estimated_performance == ref.compare(cur).estimated_performance
