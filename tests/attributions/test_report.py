"""Attributions in compare(), a fitted Reference (save/load), the report's JSON and HTML and
the Timeline: drift impact ranks the drifted features by how much the model relies on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

import watchkeeper as wk
from watchkeeper.errors import InputError
from watchkeeper.reference import Reference

pytest.importorskip("shap", reason="the explain extra: pip install -e '.[dev]'")
pd = pytest.importorskip("pandas")


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": rng.normal(shift, 1, n),  # the model leans on it
            "age": rng.normal(0, 1, n),
            "zip_noise": rng.normal(shift * 3, 1, n),  # drifts more, ignored by the model
        }
    )


@pytest.fixture(scope="module")
def setup() -> tuple[HistGradientBoostingRegressor, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ref = _frame(rng, 3000)
    y = 3 * ref.income + 0.5 * ref.age + rng.normal(0, 0.1, len(ref))
    model = HistGradientBoostingRegressor(max_iter=40).fit(ref, y)
    ref["prediction"] = model.predict(ref[["income", "age", "zip_noise"]])
    cur = _frame(rng, 2000, shift=0.8)
    cur["prediction"] = model.predict(cur[["income", "age", "zip_noise"]])
    return model, ref, cur


def _shares(model, ref) -> dict[str, float]:
    import shap

    values = shap.TreeExplainer(model).shap_values(ref[["income", "age", "zip_noise"]].head(2000))
    mean_abs = np.abs(values).mean(axis=0)
    return dict(zip(["income", "age", "zip_noise"], mean_abs / mean_abs.sum(), strict=True))


def test_drift_impact_puts_the_feature_the_model_relies_on_first(setup) -> None:
    model, ref, cur = setup
    report = wk.compare(ref, cur, model=model, prediction="prediction")
    assert set(report.drifted_columns) >= {"income", "zip_noise"}
    # zip_noise drifts more, but the model ignores it
    assert report.drift["zip_noise"].effect_size > report.drift["income"].effect_size
    order = [i.feature for i in report.drift_impact]
    assert order[0] == "income" and order[-1] == "zip_noise"
    top = report.drift_impact[0]
    # the share is the reference's mean |SHAP| share (an oracle: shap called directly on the
    # same sample of reference rows is close; the report explains a random 2,000 of 3,000)
    assert top.share == pytest.approx(_shares(model, ref)["income"], abs=0.03)
    assert top.impact == pytest.approx(report.drift["income"].effect_size * top.share)
    assert top.sentence().startswith("income drifted and carries ")
    assert report.attributions is not None and "income" in report.attributions.drifted_features
    data = report.to_dict()
    assert data["drift_impact"][0]["feature"] == "income"
    assert data["attributions"]["source"] == "model" and not data["attributions"]["approximate"]
    report.to_json()  # JSON-safe


def test_without_a_model_the_surrogate_is_marked_approximate_with_its_fidelity(setup) -> None:
    _, ref, cur = setup
    report = wk.compare(ref, cur, prediction="prediction", attributions=True)
    assert report.attributions is not None and report.attributions.approximate
    fidelity = report.attributions.fidelity
    assert fidelity is not None and fidelity["metric"] == "r2" and fidelity["value"] > 0.9
    assert report.drift_impact[0].feature == "income"
    assert "approximate: a surrogate of the model, R²" in report.drift_impact[0].sentence()
    assert "approximate" in report.attributions.message


def test_attributions_are_off_without_a_model_unless_asked(setup) -> None:
    _, ref, cur = setup
    report = wk.compare(ref, cur, prediction="prediction")
    assert report.attributions is None and report.drift_impact == []
    assert report.to_dict()["attributions"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attributions": "yes"}, "attributions must be True, False or None"),
        ({"attributions": True}, "give the model"),
        ({"model": object()}, "model: a object has no predict_proba"),
    ],
)
def test_bad_attribution_options_are_input_errors(setup, kwargs, match) -> None:
    _, ref, cur = setup
    with pytest.raises(InputError, match=match):
        wk.compare(ref.drop(columns="prediction"), cur, **kwargs)


def test_a_fitted_reference_keeps_its_attributions_across_save_and_load(
    setup, tmp_path: Path
) -> None:
    model, ref, cur = setup
    fitted = Reference.fit(ref, model=model, prediction="prediction")
    first = fitted.compare(cur)
    assert (
        first.to_dict()["attributions"]
        == wk.compare(ref, cur, model=model, prediction="prediction").to_dict()["attributions"]
    )
    fitted.save(tmp_path / "ref")
    again = Reference.load(tmp_path / "ref", model=model).compare(cur)
    assert again.to_dict()["attributions"] == first.to_dict()["attributions"]
    assert [i.to_dict() for i in again.drift_impact] == [i.to_dict() for i in first.drift_impact]
    blind = Reference.load(tmp_path / "ref").compare(cur)  # no model: impact, no window check
    assert blind.attributions is not None and blind.attributions.note is not None
    assert "Reference.load(..., model=...)" in blind.attributions.message
    assert [i.to_dict() for i in blind.drift_impact] == [i.to_dict() for i in first.drift_impact]


def test_the_html_report_and_the_timeline_show_the_drift_impact(setup, tmp_path: Path) -> None:
    model, ref, cur = setup
    fitted = Reference.fit(ref, model=model, prediction="prediction", multivariate=None)
    report = fitted.compare(cur)
    html = report.save_html(tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="impact-table"' in html and "income drifted and carries" in html
    assert 'id="attribution-table"' in html
    both = pd.concat([ref.head(1000), cur.head(1000)], ignore_index=True)
    frame = fitted.analyze(both, chunk_size=1000).to_pandas()
    attr = frame[frame.metric == "attribution_drift"]
    assert list(attr.alert) == [False, True]
    impact = frame[(frame.metric == "drift_impact") & (frame.column == "income")]
    assert len(impact) == 1 and impact.method.iloc[0].startswith("income drifted and carries")
