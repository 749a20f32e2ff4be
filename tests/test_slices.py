"""Failing slices (``report.failing_slices``): a planted failing region is found first, with its
metric checked against scikit-learn and its p-value against scipy on the slice's own rows;
uniform errors report nothing beyond the promised error rate; regression; bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, mean_absolute_error

import watchkeeper
from watchkeeper import InputError, Reference
from watchkeeper.profiles import profile_reference
from watchkeeper.report_settings import resolve_schema
from watchkeeper.slices import DEFAULTS, failing_slices, slice_options
from watchkeeper.stats.slices import holm


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "country": rng.choice(["DE", "FR", "US", "IT"], n, p=[0.3, 0.3, 0.3, 0.1]),
            "income": rng.lognormal(10.5, 0.5, n),
            "age": rng.normal(40, 12, n),
            "device": rng.choice(["phone", "laptop", "tablet"], n),
        }
    )


def _classified(seed: int, n: int, wrong_rate: Any) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = _features(rng, n)
    df["y"] = rng.integers(0, 2, n)
    wrong = rng.random(n) < wrong_rate(df)
    df["p"] = np.where(wrong, 1 - df["y"], df["y"])
    return df


def _mask(df: pd.DataFrame, conditions: list[dict[str, Any]]) -> np.ndarray:
    """The rows a slice's conditions select, computed here from the raw values."""
    mask = np.ones(len(df), dtype=bool)
    for cond in conditions:
        values = df[cond["column"]]
        if cond.get("missing"):
            mask &= values.isna().to_numpy()
        elif "in" in cond:
            mask &= values.astype(str).isin(cond["in"]).to_numpy() & values.notna().to_numpy()
        elif "not_in" in cond:
            mask &= ~values.astype(str).isin(cond["not_in"]).to_numpy() & values.notna().to_numpy()
        else:
            x = values.to_numpy(dtype=float)
            keep = ~np.isnan(x)
            if cond["low"] is not None:
                keep &= x >= cond["low"]
            if cond["high"] is not None:
                keep &= x < cond["high"]
            mask &= keep
    return mask


def test_a_planted_failing_pair_is_found_first() -> None:
    ref = _classified(0, 10_000, lambda d: 0.1)
    rich = np.quantile(ref["income"], 0.8)

    def planted(d: pd.DataFrame) -> np.ndarray:
        return np.where((d["country"] == "DE") & (d["income"] >= rich), 0.4, 0.1)

    cur = _classified(1, 10_000, planted)
    found = watchkeeper.compare(ref, cur, target="y", prediction="p").failing_slices
    assert found is not None and found.reason is None and found.slices
    top = found.slices[0]
    assert top.description.startswith("country=DE, income ≥ ") and top.columns == [
        "country",
        "income",
    ]
    # the metrics, intervals and test, recomputed on the slice's rows
    rows = _mask(cur, top.conditions)
    truth = (cur["country"] == "DE") & (cur["income"] >= rich)
    assert (rows & truth).sum() / (rows | truth).sum() > 0.97  # the frozen-bin range ≈ the plant
    assert top.n == rows.sum() and top.n_rest == (~rows).sum()
    assert top.slice_value["value"] == pytest.approx(accuracy_score(cur.y[rows], cur.p[rows]))
    assert top.rest_value["value"] == pytest.approx(accuracy_score(cur.y[~rows], cur.p[~rows]))
    assert top.slice_value["ci_low"] < top.slice_value["value"] < top.slice_value["ci_high"]
    assert top.rest_value["ci_high"] < top.slice_value["ci_low"] + 0.5  # an interval, not [0, 1]
    errors = (cur.y != cur.p).to_numpy()
    table = [
        [errors[rows].sum(), (~errors[rows]).sum()],
        [errors[~rows].sum(), (~errors[~rows]).sum()],
    ]
    expected_p = stats.fisher_exact(table, alternative="greater").pvalue
    assert top.p_value == pytest.approx(expected_p, rel=1e-6)
    assert top.adjusted_p_value == pytest.approx(min(1.0, found.tested * top.p_value), rel=1e-9)
    assert top.impact == pytest.approx(top.n * top.gap)
    assert top.error_rate is not None and top.error_rate["value"] == pytest.approx(
        1 - top.slice_value["value"]
    )
    # the singles the pair lies in are explained by it, and left out
    assert not any(s.description in ("country=DE",) for s in found.slices)
    assert found.significant >= len(found.slices)
    assert [s.impact for s in found.slices] == sorted(
        (s.impact for s in found.slices), reverse=True
    )


def test_a_failing_category_is_reported_alone() -> None:
    ref = _classified(2, 8000, lambda d: 0.1)
    cur = _classified(3, 8000, lambda d: np.where(d["device"] == "tablet", 0.25, 0.1))
    found = watchkeeper.compare(ref, cur, target="y", prediction="p").failing_slices
    assert found is not None
    assert [s.description for s in found.slices] == ["device=tablet"]
    # the pairs inside it are no worse than the rest of it: none is reported
    assert found.significant > 1


def test_uniform_errors_report_what_holm_promises() -> None:
    """Under the global null (one error rate everywhere) every significant slice is a false
    discovery: the share of data sets with any stays within alpha (binomial error)."""
    alpha, trials, hit = 0.05, 300, 0
    options = slice_options(True)
    assert options is not None
    for seed in range(trials):
        df = _classified(100 + seed, 2000, lambda d: 0.15)
        table = pa.Table.from_pandas(df, preserve_index=False)
        schema = resolve_schema(table, None, "y", "p", None, None, None)
        ref_p = profile_reference(table, schema, kll_k=0)
        found = failing_slices(ref_p, table, "y", "p", "binary", options, alpha)
        assert found.tested > 30
        hit += found.significant > 0
    assert hit / trials <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)


def test_regression_slices_by_mae() -> None:
    rng = np.random.default_rng(5)
    n = 8000
    df = _features(rng, n)
    df["p"] = df["age"] / 10
    bad = (df["device"] == "phone") & (df["age"] < np.quantile(df["age"], 0.2))
    df["y"] = df["p"] + rng.normal(0, np.where(bad, 3.0, 1.0))
    found = watchkeeper.compare(df, df, target="y", prediction="p").failing_slices
    assert found is not None and found.metric == "mae" and found.test == "welch t, one-sided"
    top = found.slices[0]
    assert top.description.startswith("age < ") and top.description.endswith("device=phone")
    rows = _mask(df, top.conditions)
    abs_err = np.abs(df.y - df.p).to_numpy()
    assert top.slice_value["value"] == pytest.approx(mean_absolute_error(df.y[rows], df.p[rows]))
    assert top.rest_value["value"] == pytest.approx(mean_absolute_error(df.y[~rows], df.p[~rows]))
    half = 1.959963984540054 * abs_err[rows].std(ddof=1) / np.sqrt(rows.sum())
    assert top.slice_value["ci_high"] == pytest.approx(top.slice_value["value"] + half)
    expected = stats.ttest_ind(
        abs_err[rows], abs_err[~rows], equal_var=False, alternative="greater"
    )
    assert top.p_value == pytest.approx(expected.pvalue, rel=1e-5, abs=1e-300)
    assert top.error_rate is None


def test_multiclass_and_the_adjustment_over_all_tested() -> None:
    rng = np.random.default_rng(6)
    n = 6000
    df = _features(rng, n)
    df["y"] = rng.choice(["a", "b", "c"], n)
    wrong = rng.random(n) < np.where(df["country"] == "IT", 0.5, 0.2)
    df["p"] = np.where(wrong, np.where(df["y"] == "a", "b", "a"), df["y"])
    report = watchkeeper.compare(df, df, target="y", prediction="p")
    found = report.failing_slices
    assert found is not None and found.slices[0].description == "country=IT"
    assert report.performance is not None and report.performance["task"] == "multiclass"
    d = found.to_dict()
    assert d["correction"] == "holm" and d["tested"] == found.tested and d["min_rows"] == 60
    assert d["slices"][0]["conditions"] == [{"column": "country", "in": ["IT"]}]
    assert d["slices"][0]["adjusted_p_value"] == pytest.approx(
        float(holm(np.r_[found.slices[0].p_value, np.ones(found.tested - 1)])[0])
    )


def test_min_size_and_pairs_options() -> None:
    df = _classified(7, 3000, lambda d: 0.1)
    full = watchkeeper.compare(df, df, target="y", prediction="p").failing_slices
    singles = watchkeeper.compare(
        df, df, target="y", prediction="p", slices={"pairs": False, "min_rows": 200}
    ).failing_slices
    assert full is not None and singles is not None
    assert singles.min_size == 200 and full.min_size == max(30, 30)
    assert singles.tested < full.tested
    assert singles.options == {**DEFAULTS, "pairs": False, "min_rows": 200}


def test_no_labels_is_an_empty_result_with_a_reason() -> None:
    df = _classified(8, 2000, lambda d: 0.1)
    unlabelled = watchkeeper.compare(df, df).failing_slices
    assert (
        unlabelled is not None
        and unlabelled.slices == []
        and "no target" in (unlabelled.reason or "")
    )
    late = watchkeeper.compare(df, df.drop(columns=["y"]), target="y", prediction="p")
    assert late.failing_slices is not None and late.failing_slices.slices == []
    assert "'y'" in (late.failing_slices.reason or "")
    assert late.to_dict()["failing_slices"]["reason"] == late.failing_slices.reason
    tiny = watchkeeper.compare(df, df.head(40), target="y", prediction="p").failing_slices
    assert tiny is not None and "fewer than twice" in (tiny.reason or "")
    off = watchkeeper.compare(df, df, target="y", prediction="p", slices=False)
    assert off.failing_slices is None and off.to_dict()["failing_slices"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"nope": 1}, "unknown slices option"),
        ("yes", "slices must be True, False or a mapping"),
        ({"min_rows": 0}, "min_rows must be an integer in"),
        ({"ranges": 1}, r"ranges must be an integer in \[2, 50\]"),
        ({"categories": 500}, "categories must be an integer in"),
        ({"min_share": 0.7}, "min_share must be in"),
        ({"pairs": "no"}, "pairs must be True or False"),
    ],
)
def test_bad_options_are_input_errors(value: object, message: str) -> None:
    df = _classified(9, 500, lambda d: 0.1)
    with pytest.raises(InputError, match=message):
        watchkeeper.compare(df, df, target="y", prediction="p", slices=value)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=message):
        Reference.fit(df, target="y", prediction="p", slices=value)  # type: ignore[arg-type]


def test_the_fitted_reference_and_the_html_report(tmp_path: Any) -> None:
    ref = _classified(10, 6000, lambda d: 0.1)
    cur = _classified(11, 6000, lambda d: np.where(d["country"] == "IT", 0.3, 0.1))
    options: dict[str, Any] = {"target": "y", "prediction": "p", "slices": {"top": 5}}
    expected = watchkeeper.compare(ref, cur, **options).to_dict()
    fitted = Reference.fit(ref, **options)
    for got in (fitted, Reference.load(fitted.save(tmp_path / "ref"))):
        left = got.compare(cur).to_dict()
        left.pop("created_at"), expected.pop("created_at", None)
        assert left == expected
    page = watchkeeper.compare(ref, cur, **options).save_html(tmp_path / "r.html")
    text = page.read_text(encoding="utf-8")
    assert 'href="#slices"' in text and 'id="slices-table"' in text
    assert "Accuracy fell mostly in <b>country=IT</b>" in text


def test_the_docs_walkthrough_runs(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_docs import run_python_blocks

    monkeypatch.chdir(tmp_path)
    run_python_blocks("slices.md", at_least=6)
