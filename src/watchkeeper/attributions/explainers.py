"""SHAP attributions of a model's output, one explainer per kind of model.

* **tree** — scikit-learn decision trees, random forests, extra trees, gradient boosting and
  histogram gradient boosting, LightGBM and XGBoost: ``shap.TreeExplainer``'s exact
  path-dependent values (no background needed), computed by
  :mod:`watchkeeper.attributions.fasttree` from SHAP's parse of the trees (the same values,
  per-leaf tables, compiled, across the cores) when the trees have one output and numeric
  splits, else by SHAP itself, the rows split over the cores.
* **linear** — scikit-learn linear models (``coef_`` and ``intercept_``):
  ``shap.LinearExplainer`` against a background sample of the reference.
* **permutation** — anything else that scores rows: an estimator or pipeline with
  ``predict_proba``/``predict``, an ONNX Runtime ``InferenceSession``, or a plain callable:
  ``shap.PermutationExplainer`` against a background sample (model-agnostic, approximate in
  the number of permutations, slow: a smaller sample of each window is explained).

What is explained is one number per row: a regressor's prediction; a binary classifier's
score for its second class (the log-odds for boosting and linear models, the probability for
forests, as SHAP gives them); a multi-class model's score for the class it predicts. The
attributions of a row then sum to that output minus the explainer's expected value.

SHAP is optional: ``pip install 'watchkeeper[explain]'``; without it
:class:`MissingShap` names the extra.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.errors import InputError, WatchkeeperError

Matrix = NDArray[np.float64]
TREE_CLASSES = {
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "IsolationForest",
}
TREE_MODULES = ("lightgbm", "xgboost")
BACKGROUND_ROWS = 100  # reference rows the linear and permutation explainers integrate over
PERMUTATION_BACKGROUND = 50


class MissingShap(WatchkeeperError):
    """SHAP (the ``explain`` extra) is not installed."""

    http_status = 501
    exit_code = 2


def shap_module() -> Any:
    """``import shap``, or :class:`MissingShap` naming the extra to install."""
    try:
        import shap
    except ImportError as exc:
        raise MissingShap(
            f"attributions need SHAP ({exc}); install it with pip install 'watchkeeper[explain]'"
        ) from None
    return shap


def kind_of(model: object) -> str:
    """``"tree"``, ``"linear"`` or ``"permutation"``: which explainer ``model`` gets."""
    cls = type(model)
    module = cls.__module__ or ""
    if module.split(".")[0] in TREE_MODULES or (
        module.startswith("sklearn.") and cls.__name__ in TREE_CLASSES
    ):
        return "tree"
    if module.startswith("sklearn.linear_model") and hasattr(model, "coef_"):
        return "linear"
    if scorer_of(model) is None:
        raise InputError(
            f"model: a {cls.__name__} has no predict_proba, predict or run and is not callable"
        )
    return "permutation"


def scorer_of(model: object) -> Callable[[Any], Any] | None:
    """The function that scores a batch: ``predict_proba``, ``predict``, an ONNX session's
    ``run`` (wrapped by :func:`onnx_scorer`) or the callable itself."""
    if hasattr(model, "get_inputs") and hasattr(model, "run"):
        return onnx_scorer(model)
    for name in ("predict_proba", "predict"):
        fn = getattr(model, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return model if callable(model) else None


def onnx_scorer(session: Any) -> Callable[[Any], Any]:
    """Score a float matrix with an ONNX Runtime session: one 2-D input of all features, or
    one input per feature; the class probabilities when the graph has them (a second output,
    a tensor or skl2onnx's list of maps), else the first output."""
    inputs = session.get_inputs()

    def score(x: Any) -> Any:
        x = np.asarray(x, dtype=np.float32)
        if len(inputs) == 1:
            feed = {inputs[0].name: x}
        else:
            feed = {arg.name: x[:, [j]] for j, arg in enumerate(inputs)}
        outs = session.run(None, feed)
        out = outs[1] if len(outs) > 1 else outs[0]
        if isinstance(out, list) and out and isinstance(out[0], dict):
            keys = list(out[0])
            out = [[row[k] for k in keys] for row in out]
        return np.asarray(out, dtype=np.float64)

    return score


@dataclass
class Explained:
    """Attributions of rows: ``values[i, j]`` is feature ``j``'s share of row ``i``'s output
    above ``base[i]`` (the expected value of the explained output)."""

    values: Matrix
    base: NDArray[np.float64]
    output: NDArray[np.float64]  # what is explained, per row: base + values.sum(1)


class Explainer:
    """A SHAP explainer of ``model`` over float matrices of ``features`` (categories as codes
    decoded by ``to_input`` before the model sees them)."""

    def __init__(
        self,
        model: object,
        features: Sequence[str],
        background: Matrix,
        to_input: Callable[[Matrix], Any],
        seed: int | None = 0,
    ) -> None:
        self.model = model
        self.features = list(features)
        self.kind = kind_of(model)
        self.to_input = to_input
        self.seed = seed
        shap = shap_module()
        rng = np.random.default_rng(None if seed is None else (seed, 11))
        self._tables: Any = None
        if self.kind == "tree":
            self._explainer = shap.TreeExplainer(model)
            from watchkeeper.attributions import fasttree

            if fasttree.supported(self._explainer.model):  # the same values, faster
                self._tables = fasttree.build(self._explainer.model, len(self.features))
        elif self.kind == "linear":
            bg = _sample(background, BACKGROUND_ROWS, rng)
            self._explainer = shap.LinearExplainer(model, shap.maskers.Independent(bg))
        else:
            scorer = scorer_of(model)
            assert scorer is not None
            bg = _sample(background, PERMUTATION_BACKGROUND, rng)

            def f(x: Matrix) -> Any:
                return _one_output(np.asarray(scorer(to_input(x)), dtype=np.float64))

            self._f = f
            self._explainer = shap.PermutationExplainer(
                f, shap.maskers.Independent(bg, max_samples=len(bg)), seed=seed
            )

    @property
    def method(self) -> str:
        return {"tree": "shap_tree", "linear": "shap_linear"}.get(self.kind, "shap_permutation")

    def explain(self, x: Matrix) -> Explained:
        """The attributions of the rows of ``x``."""
        if len(x) == 0:
            f = len(self.features)
            return Explained(np.empty((0, f)), np.empty(0), np.empty(0))
        if self.kind == "tree":
            values, base = self._tree(x)
        elif self.kind == "linear":
            values = np.asarray(self._explainer.shap_values(x), dtype=np.float64)
            base = np.asarray(self._explainer.expected_value, dtype=np.float64)
        else:
            n_evals = 2 * len(self.features) + 1
            res = self._explainer(x, max_evals=max(n_evals, 3), silent=True)
            values = np.asarray(res.values, dtype=np.float64)
            base = np.asarray(res.base_values, dtype=np.float64)
        values, base = _one_class(values, base)
        return Explained(values, base, base + values.sum(axis=1))

    def _tree(self, x: Matrix) -> tuple[Matrix, NDArray[np.float64]]:
        if self._tables is not None:
            from watchkeeper.attributions import fasttree

            values = fasttree.shap_values(self._tables, x)
            return values, np.array(self._tables.expected_value)
        workers = min(os.cpu_count() or 1, max(1, len(x) // 500))

        def part(rows: Matrix) -> Matrix:
            return np.asarray(self._explainer.shap_values(rows, check_additivity=False))

        if workers == 1:
            values = part(x)
        else:  # SHAP's C++ tree walk releases the GIL: threads share the cores
            with ThreadPoolExecutor(workers, thread_name_prefix="watchkeeper-shap") as pool:
                values = np.concatenate(list(pool.map(part, np.array_split(x, workers))))
        return values.astype(np.float64), np.asarray(self._explainer.expected_value, np.float64)


def _sample(x: Matrix, n: int, rng: np.random.Generator) -> Matrix:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def _one_output(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """The permutation explainer's output of a batch: the score of the second class of a
    two-column score matrix, every class of a wider one, the prediction of a vector."""
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1]
    if scores.ndim == 2 and scores.shape[1] == 1:
        return scores[:, 0]
    return scores


def _one_class(
    values: NDArray[np.float64], base: NDArray[np.float64]
) -> tuple[Matrix, NDArray[np.float64]]:
    """One output per row: SHAP's ``[n, f, k]`` values (a classifier's classes) become the
    second class's (two classes) or the predicted class's (more); ``base`` per row."""
    n = values.shape[0]
    base = np.asarray(base, dtype=np.float64)
    if values.ndim == 3:
        k = values.shape[2]
        per_class_base = base.reshape(-1, k)[0] if base.ndim <= 1 else base
        if k == 2:
            return values[:, :, 1], np.broadcast_to(per_class_base[..., 1], (n,)).copy()
        totals = values.sum(axis=1) + per_class_base
        top = np.argmax(totals, axis=1)
        rows = np.arange(n)
        b = per_class_base[rows, top] if per_class_base.ndim == 2 else per_class_base[top]
        return values[rows, :, top], b
    if base.ndim == 0 or base.size == 1:
        base = np.full(n, float(base.reshape(-1)[0]))
    return values, base.reshape(-1)[:n] if base.size >= n else np.resize(base, n)
