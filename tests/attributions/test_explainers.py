"""Attributions against their oracles: TreeSHAP sums to the model's output minus the expected
value, the linear explainer is coef × (x − background mean), the permutation explainer is
additive for any callable (a pipeline with categories, an ONNX session)."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from watchkeeper.attributions import MissingShap, fit_attributions, kind_of
from watchkeeper.errors import InputError
from watchkeeper.schema import infer_schema

pytest.importorskip("shap", reason="the explain extra: pip install -e '.[dev]'")


def _data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = 2 * x[:, 0] - x[:, 1] + x[:, 2] * x[:, 3] + rng.normal(0, 0.3, n)
    return x, y, pa.table({f"f{j}": x[:, j] for j in range(4)})


def _explained(model: object, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    fit = fit_attributions(table, infer_schema(table), model, None, seed=0)
    assert fit.explainer is not None
    x = table.to_pandas().to_numpy()
    ex = fit.explainer.explain(x)
    return ex.values, ex.base


@pytest.mark.parametrize(
    ("make", "output"),
    [
        (lambda: HistGradientBoostingRegressor(max_iter=30), "predict"),
        (lambda: GradientBoostingRegressor(n_estimators=30), "predict"),
        (lambda: RandomForestRegressor(20, max_depth=5, random_state=0), "predict"),
        (lambda: HistGradientBoostingClassifier(max_iter=30), "decision_function"),
        (lambda: RandomForestClassifier(20, max_depth=5, random_state=0), "proba"),
    ],
    ids=["hgb", "gbr", "rf", "hgb-binary", "rf-binary"],
)
def test_tree_attributions_sum_to_the_output_minus_the_expected_value(make, output) -> None:
    x, y, table = _data()
    is_classifier = output != "predict"
    model = make().fit(x, y > 0 if is_classifier else y)
    assert kind_of(model) == "tree"
    values, base = _explained(model, table)
    if output == "predict":
        direct = model.predict(x)
    elif output == "decision_function":
        direct = model.decision_function(x)
    else:
        direct = model.predict_proba(x)[:, 1]
    np.testing.assert_allclose(values.sum(axis=1) + base, direct, atol=1e-6)
    # the feature the model leans on most carries the most attribution
    assert np.argmax(np.abs(values).mean(axis=0)) == 0


def test_linear_attributions_are_coef_times_distance_from_the_background_mean() -> None:
    x, y, table = _data()
    model = LinearRegression().fit(x, y)
    assert kind_of(model) == "linear"
    fit = fit_attributions(table, infer_schema(table), model, None, seed=0)
    assert fit.explainer is not None and fit.method == "shap_linear"
    background = fit.explainer._explainer.masker.data  # the reference sample it integrates over
    values = fit.explainer.explain(x).values
    np.testing.assert_allclose(values, model.coef_ * (x - background.mean(axis=0)), atol=1e-9)


def test_a_pipeline_with_categories_gets_additive_permutation_attributions() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(1)
    n = 150
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "country": rng.choice(["DE", "FR", "US"], n),
            "age": rng.normal(40, 8, n),
        }
    )
    label = (frame.income > 50) ^ (frame.country == "DE")
    pipe = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(), ["country"])], remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, label)
    assert kind_of(pipe) == "permutation"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    fit = fit_attributions(table, infer_schema(table), pipe, None, seed=0)
    assert fit.explainer is not None and fit.method == "shap_permutation"
    x = fit.codes.matrix(table.slice(0, 20))
    ex = fit.explainer.explain(x)
    np.testing.assert_allclose(ex.output, pipe.predict_proba(frame.iloc[:20])[:, 1], atol=1e-9)
    np.testing.assert_allclose(ex.values.sum(axis=1) + ex.base, ex.output, atol=1e-9)


def test_an_onnx_session_is_explained_by_permutation() -> None:
    ort = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    x, y, table = _data(300)
    model = LinearRegression().fit(x, y)
    onx = skl2onnx.convert_sklearn(model, initial_types=[("X", FloatTensorType([None, 4]))])
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    assert kind_of(session) == "permutation"
    fit = fit_attributions(table, infer_schema(table), session, None, seed=0)
    assert fit.explainer is not None
    ex = fit.explainer.explain(x[:30])
    np.testing.assert_allclose(ex.output, model.predict(x[:30]), atol=1e-4)
    np.testing.assert_allclose(ex.values.sum(axis=1) + ex.base, ex.output, atol=1e-6)
    # a linear model's exact SHAP values: the permutation explainer finds them
    bg = fit.explainer._explainer.masker.data
    np.testing.assert_allclose(ex.values, model.coef_ * (x[:30] - bg.mean(axis=0)), atol=1e-4)


def test_a_multiclass_model_explains_its_predicted_class() -> None:
    x, y, table = _data()
    classes = np.digitize(y, [-1, 1])
    model = HistGradientBoostingClassifier(max_iter=20).fit(x, classes)
    values, base = _explained(model, table)
    raw = model.decision_function(x)
    top = np.argmax(raw, axis=1)
    np.testing.assert_allclose(values.sum(axis=1) + base, raw[np.arange(len(x)), top], atol=1e-6)


def test_a_model_that_cannot_score_is_an_input_error_naming_the_model() -> None:
    _, _, table = _data(100)
    with pytest.raises(InputError, match="model"):
        fit_attributions(table, infer_schema(table), object(), None, seed=0)


def test_a_model_of_another_width_is_an_input_error() -> None:
    x, y, table = _data(100)
    model = LinearRegression().fit(x[:, :3], y)
    with pytest.raises(InputError, match="reads 3 features"):
        fit_attributions(table, infer_schema(table), model, None, seed=0)


def test_without_shap_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, table = _data(100)
    model = LinearRegression().fit(x, y)
    monkeypatch.setitem(sys.modules, "shap", None)  # as if it were not installed
    with pytest.raises(MissingShap, match=r"watchkeeper\[explain\]"):
        fit_attributions(table, infer_schema(table), model, None, seed=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=63),
        lambda: RandomForestRegressor(10, random_state=0),  # deep trees: long paths
    ],
    ids=["hgb-missing-values", "rf-deep"],
)
def test_the_leaf_tables_give_shaps_own_tree_values(make) -> None:
    import shap

    from watchkeeper.attributions import fasttree

    x, y, _ = _data(800)
    x[np.random.default_rng(5).random(x.shape) < 0.05] = np.nan  # missing values follow defaults
    model = make().fit(np.nan_to_num(x) if "Forest" in type(make()).__name__ else x, y)
    explainer = shap.TreeExplainer(model)
    assert fasttree.supported(explainer.model)
    tables = fasttree.build(explainer.model, 4)
    rows = np.nan_to_num(x) if "Forest" in type(model).__name__ else x
    np.testing.assert_allclose(
        fasttree.shap_values(tables, rows),
        explainer.shap_values(rows, check_additivity=False),
        atol=1e-9,
    )
    np.testing.assert_allclose(tables.expected_value, explainer.expected_value, atol=1e-12)
