"""Multivariate drift (``watchkeeper.multivariate``): the PCA reconstruction error and the
domain classifier against scikit-learn and scipy on the same data, a change that only the joint
distribution shows, and the false-alarm rate over many windows without drift."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

import watchkeeper
from watchkeeper.errors import InputError
from watchkeeper.html_format import fmt_num
from watchkeeper.multivariate import fit_multivariate, multivariate_drift
from watchkeeper.multivariate.classifier import auc_with_null_variance, domain_classifier
from watchkeeper.multivariate.encoding import Encoder
from watchkeeper.multivariate.reconstruction import Pca
from watchkeeper.schema import infer_schema


def _draw(rng: np.random.Generator, n: int, rho: float = 0.8) -> pa.Table:
    """income and age correlated (``rho``), with the same marginals whatever ``rho`` is."""
    xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
    return pa.table(
        {
            "income": np.exp(10 + 0.5 * xy[:, 0]),
            "age": 45 + 12 * xy[:, 1],
            "z": rng.standard_t(4, n),
            "country": rng.choice(["fr", "de", "it", "es"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def _binomial_band(trials: int, alpha: float) -> tuple[float, float]:
    """The 99.9 % band of the number of alarms of a test with false-alarm rate ``alpha``."""
    low, high = stats.binom.interval(0.999, trials, alpha)
    return float(low), float(high)


def test_reconstruction_error_matches_scikit_learn_pca() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    ref = _draw(rng, 3000)
    enc = Encoder.fit(ref, ref.column_names, ["country"])
    x = enc.transform(ref, impute=True)
    new = enc.transform(_draw(rng, 500, rho=-0.5), impute=True)
    ours = Pca.fit(x)
    theirs = PCA(n_components=0.65, svd_solver="full").fit(x)
    assert ours.n_components == theirs.n_components_
    assert ours.explained == pytest.approx(theirs.explained_variance_ratio_.sum(), rel=1e-9)
    expected = np.linalg.norm(new - theirs.inverse_transform(theirs.transform(new)), axis=1)
    np.testing.assert_allclose(ours.errors(new), expected, rtol=1e-7, atol=1e-9)


def test_encoder_standardizes_and_frequency_encodes() -> None:
    table = pa.table({"x": [1.0, 3.0, None, 5.0], "c": ["a", "a", "b", None], "k": [7, 7, 7, 7]})
    enc = Encoder.fit(table, ["x", "c", "k"], ["c"])
    assert enc.columns == ["x", "c"]  # the constant column carries nothing
    assert enc.mean.tolist() == pytest.approx([3.0, 0.375])
    raw = enc.transform(pa.table({"x": [3.0, None], "c": ["zz", None]}), impute=False)
    assert raw[0, 0] == 0.0 and np.isnan(raw[1, 0])
    # an unseen category is read as share 0, a missing one as the share of missing values
    assert raw[:, 1] * enc.scale[1] + enc.mean[1] == pytest.approx([0.0, 0.25])
    assert enc.transform(pa.table({"x": [None], "c": ["a"]}), impute=True)[0, 0] == 0.0


def test_auc_and_its_null_variance_match_scikit_learn_and_scipy() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=700), 1)  # many ties
    labels = rng.random(700) < 0.3
    scores[labels] += 0.2
    auc, var = auc_with_null_variance(scores, labels)
    assert auc == pytest.approx(roc_auc_score(labels, scores), rel=1e-12)
    # scipy's asymptotic Mann-Whitney test (tie-corrected, no continuity correction)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    res = stats.mannwhitneyu(
        scores[labels], scores[~labels], method="asymptotic", use_continuity=False
    )
    z = stats.norm.isf(res.pvalue / 2)
    assert abs(auc - 0.5) / np.sqrt(var) == pytest.approx(z, rel=1e-6)
    assert n0 * n1 > 0


def test_a_flipped_correlation_is_found_jointly_and_by_no_column() -> None:
    rng = np.random.default_rng(2)
    ref, flipped = _draw(rng, 6000), _draw(rng, 2000, rho=-0.8)
    report = watchkeeper.compare(ref, flipped, multivariate="all")
    assert report.drifted_columns == []  # every marginal is the same
    joint = report.multivariate_drift
    assert joint is not None and joint.drifted
    assert joint.results["pca"].drifted and joint.results["classifier"].drifted
    assert {name for name, _ in joint.drivers[:2]} == {"income", "age"}
    assert joint.message in (
        "the joint distribution changed, mostly through income × age",
        "the joint distribution changed, mostly through age × income",
    )
    same = watchkeeper.compare(ref, _draw(rng, 2000), multivariate="all").multivariate_drift
    assert same is not None and not same.drifted
    assert same.message == "no change in the joint distribution found"


def test_pca_false_alarms_stay_at_the_stated_rate() -> None:
    """300 reference/window pairs without drift (a new reference each time: the decision also
    carries the reference's own sampling error), at ``alpha = 0.05``."""
    rng = np.random.default_rng(3)
    schema = infer_schema(_draw(rng, 100))
    trials, alpha, alarms = 300, 0.05, 0
    sides = {"error rose": 0, "error fell": 0}
    for i in range(trials):
        ref = _draw(rng, 3000)
        fit = fit_multivariate(ref, schema, seed=i)
        res = multivariate_drift(fit, ref, _draw(rng, 400), ("pca",), alpha, i)
        assert res is not None
        pca = res.results["pca"]
        alarms += pca.drifted
        if pca.drifted:
            sides[pca.details["side"]] += 1
    low, high = _binomial_band(trials, alpha)
    assert low <= alarms <= high, alarms
    # two-sided: each side at alpha / 2
    low, high = _binomial_band(trials, alpha / 2)
    assert all(low <= n <= high for n in sides.values()), sides


def test_a_correlation_that_tightens_lowers_the_error_and_is_found() -> None:
    """The rows crowd closer to the reference's main directions (income and age correlated
    0.9 instead of 0.6, the marginals unchanged): the mean reconstruction error falls below
    the band, which a one-sided decision (error above a threshold) cannot see."""
    rng = np.random.default_rng(11)
    ref = _draw(rng, 5000, rho=0.6)
    report = watchkeeper.compare(ref, _draw(rng, 1000, rho=0.9))
    assert report.drifted_columns == []
    joint = report.multivariate_drift
    assert joint is not None and joint.drifted
    pca = joint.results["pca"]
    assert pca.statistic is not None and pca.reference_value is not None
    assert pca.statistic < pca.details["lower_threshold"] < pca.reference_value
    assert pca.details["upper_threshold"] == pca.threshold > pca.reference_value
    assert pca.details["side"] == "error fell"
    assert joint.message == "the joint distribution changed (PCA reconstruction error fell)"
    flip = watchkeeper.compare(ref, _draw(rng, 1000, rho=-0.6)).multivariate_drift
    assert flip is not None and flip.results["pca"].details["side"] == "error rose"
    calm = watchkeeper.compare(ref, _draw(rng, 1000, rho=0.6)).multivariate_drift
    assert calm is not None and not calm.drifted and calm.results["pca"].details["side"] is None


def test_the_band_does_not_depend_on_the_order_of_window_sizes() -> None:
    """A fitted reference that judged larger windows first gives a window the band that a
    fresh ``compare()`` gives it: the bootstrap is drawn per block of its own stream."""
    rng = np.random.default_rng(12)
    ref, cur = _draw(rng, 4000), _draw(rng, 300)
    fitted = watchkeeper.Reference.fit(ref)
    for n in (1500, 50, 700):
        fitted.compare(_draw(rng, n))
    a = fitted.compare(cur).multivariate_drift
    b = watchkeeper.compare(ref, cur).multivariate_drift
    assert a is not None and b is not None
    assert a.results["pca"].to_dict() == b.results["pca"].to_dict()


@pytest.mark.slow
def test_classifier_false_alarms_stay_at_the_stated_rate() -> None:
    """200 null trials of the domain classifier at ``alpha = 0.05``."""
    rng = np.random.default_rng(4)
    trials, alpha, alarms = 200, 0.05, 0
    names = ["a", "b", "c", "d"]
    for i in range(trials):
        cov = [[1, 0.6, 0, 0], [0.6, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
        ref = rng.multivariate_normal(np.zeros(4), cov, 600)
        cur = rng.multivariate_normal(np.zeros(4), cov, 300)
        alarms += domain_classifier(ref, cur, names, alpha=alpha, seed=i).drifted
    low, high = _binomial_band(trials, alpha)
    assert low <= alarms <= high, alarms


def test_a_time_ordered_reference_calibrates_to_its_natural_variation() -> None:
    """Days whose correlation wobbles: the i.i.d. calibration alarms on new days of the same
    process, the chunked one (the reference's own days) does not, and a flip is still found."""
    rng = np.random.default_rng(5)

    def day(i: int, n: int, rho: float | None = None) -> pa.Table:
        t = _draw(rng, n, rho=float(rng.uniform(0.2, 0.9)) if rho is None else rho)
        stamps = pa.array(np.datetime64("2024-01-01") + np.full(n, i, "timedelta64[D]"))
        return t.append_column("ts", pa.compute.cast(stamps, pa.timestamp("s")))

    ref = pa.concat_tables([day(i, 1000) for i in range(30)])
    chunked = watchkeeper.Reference.fit(ref, timestamp="ts")
    iid = watchkeeper.Reference.fit(ref.drop_columns(["ts"]))
    new_days = [day(30 + i, 1000) for i in range(12)]
    chunked_alarms = sum(
        chunked.compare(d).multivariate_drift.drifted  # type: ignore[union-attr]
        for d in new_days
    )
    iid_alarms = sum(
        iid.compare(d.drop_columns(["ts"])).multivariate_drift.drifted  # type: ignore[union-attr]
        for d in new_days
    )
    assert iid_alarms >= 4 and chunked_alarms <= 1, (iid_alarms, chunked_alarms)
    flip = chunked.compare(day(50, 1000, rho=-0.8)).multivariate_drift
    assert flip is not None and flip.drifted
    assert flip.results["pca"].details["reference_chunks"] == 30


def test_reference_fits_once_and_matches_compare() -> None:
    rng = np.random.default_rng(6)
    ref, cur = _draw(rng, 4000), _draw(rng, 1000, rho=-0.8)
    fitted = watchkeeper.Reference.fit(ref, multivariate="all")
    fit = fitted.multivariate_fit()
    a = fitted.compare(cur).to_dict()
    assert fitted.multivariate_fit() is fit  # fitted once, kept
    b = watchkeeper.compare(ref, cur, multivariate="all").to_dict()
    a.pop("created_at"), b.pop("created_at")
    assert a == b and a["multivariate_drift"]["drifted"]
    off = watchkeeper.compare(ref, cur, multivariate=None)
    assert off.multivariate_drift is None and off.to_dict()["multivariate_drift"] is None


def test_the_timeline_has_the_multivariate_metrics() -> None:
    rng = np.random.default_rng(7)
    fitted = watchkeeper.Reference.fit(_draw(rng, 6000, rho=0.6), multivariate="all")
    data = pa.concat_tables(
        [_draw(rng, 1500, rho=0.6), _draw(rng, 1500, rho=-0.8), _draw(rng, 1500, rho=0.95)]
    )
    timeline = fitted.analyze(data, chunk_size=1500)
    frame = timeline.to_pandas()
    for metric in ("multivariate_pca", "multivariate_classifier"):
        rows = frame[frame["metric"] == metric]
        assert rows["alert"].tolist()[:2] == [False, True], metric
        assert (rows["column"] == "").all() and rows["threshold"].notna().all()
    pca = frame[frame["metric"] == "multivariate_pca"]
    assert pca["alert"].tolist() == [False, True, True]  # the error rose, then fell
    assert pca["method"].tolist() == ["pca", "pca (error rose)", "pca (error fell)"]
    assert (pca["lower_threshold"] < pca["threshold"]).all()
    assert pca["value"].iloc[2] < pca["lower_threshold"].iloc[2]
    assert frame[frame["metric"] != "multivariate_pca"]["lower_threshold"].isna().all()
    clf = frame[frame["metric"] == "multivariate_classifier"]["method"].tolist()
    assert clf[1] in ("classifier (income × age)", "classifier (age × income)")
    alerts = timeline.alerts()
    assert {"multivariate_pca", "multivariate_classifier"} <= set(alerts["metric"])
    traces = {t.name: t for t in timeline.plot("multivariate_pca").data}
    band = traces["dataset: lower threshold"]  # the no-drift band, shaded to the upper line
    assert band.fill == "tonexty" and list(band.y) == pca["lower_threshold"].tolist()
    assert list(traces["dataset: upper threshold"].y) == pca["threshold"].tolist()
    table = timeline._repr_html_()
    assert "joint drift" in table and table.count("<td>no</td>") >= 1 and "<td>yes (" in table


def test_the_html_report_has_the_joint_drift_section(tmp_path: object) -> None:
    from pathlib import Path

    rng = np.random.default_rng(8)
    report = watchkeeper.compare(_draw(rng, 3000), _draw(rng, 1000, rho=-0.8), multivariate="all")
    page = report.save_html(Path(str(tmp_path)) / "r.html").read_text(encoding="utf-8")
    assert 'id="multivariate"' in page and "PCA reconstruction error" in page
    assert "mostly through" in page and 'id="multivariate-drivers"' in page
    assert "Joint drift</div>" in page  # the summary card
    pca = report.multivariate_drift.results["pca"]  # type: ignore[union-attr]
    band = f"{fmt_num(pca.details['lower_threshold'])} – {fmt_num(pca.threshold)}"
    assert band in page and '<span class="side">error rose</span>' in page
    ref = _draw(rng, 5000, rho=0.6)
    fell = watchkeeper.compare(ref, _draw(rng, 1000, rho=0.9))
    page = fell.save_html(Path(str(tmp_path)) / "f.html").read_text(encoding="utf-8")
    assert '<span class="side">error fell</span>' in page
    assert "PCA reconstruction error fell" in page  # the section's message
    quiet = watchkeeper.compare(_draw(rng, 3000), _draw(rng, 1000), multivariate=None)
    assert 'id="multivariate"' not in quiet.save_html(Path(str(tmp_path)) / "q.html").read_text(
        encoding="utf-8"
    )


def test_bad_options_and_too_little_data_say_why() -> None:
    rng = np.random.default_rng(9)
    ref = _draw(rng, 500)
    with pytest.raises(InputError, match="multivariate must be one of"):
        watchkeeper.compare(ref, ref, multivariate="lda")
    with pytest.raises(InputError, match="multivariate must be one of"):
        watchkeeper.Reference.fit(ref, multivariate="lda")
    small = watchkeeper.compare(ref.slice(0, 60), ref, multivariate="all").multivariate_drift
    assert small is not None and not small.drifted
    assert "reference rows" in (small.results["pca"].note or "")
    missing = watchkeeper.compare(ref, ref.drop_columns(["age"])).multivariate_drift
    assert missing is not None and "missing" in (missing.results["pca"].note or "")
    one = watchkeeper.compare(ref.select(["income"]), ref.select(["income"])).multivariate_drift
    assert one is not None and "two feature columns" in (one.results["pca"].note or "")
    empty = watchkeeper.compare(ref, ref.slice(0, 0)).multivariate_drift
    assert empty is not None and "no rows" in (empty.results["pca"].note or "")
