"""The reference's side of the attributions, computed once: which features the model reads, how
they become its input, the explainer (of the model, or of a surrogate of it) and the
attributions of a sample of the reference's rows.

Without a model, a **surrogate** stands in: a scikit-learn histogram gradient boosting model
fitted on three quarters of the reference's inputs to the model's logged predictions (the
reference's prediction column: a regressor for numbers, a classifier for labels). Its fidelity
on the remaining quarter — R² for numbers, agreement for labels — goes with every number it
produces, marked approximate: it explains the surrogate, which mimics the model that well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.attributions.explainers import Explainer, Matrix, kind_of
from watchkeeper.errors import InputError
from watchkeeper.schema import ColumnType, Role, Schema

REFERENCE_ROWS = 2000  # reference rows explained once, at most (a random sample)
# (the permutation explainer's background is drawn from them; it explains PERMUTATION_ROWS)
WINDOW_ROWS = 2000  # window rows explained, at most (tree and linear explainers)
PERMUTATION_ROWS = 200  # the same for the (much slower) permutation explainer
SURROGATE_ROWS = 20_000  # reference rows the surrogate is fitted on, at most
SURROGATE_PARAMS = {"max_iter": 100, "early_stopping": False}


def _rng(seed: int | None, stream: int) -> np.random.Generator:
    return np.random.default_rng(None if seed is None else (seed, stream))


@dataclass
class Codes:
    """Features ↔ the float matrix the explainers see: numbers as they are (missing: NaN),
    categories as their index among the reference's (unseen or missing: NaN). ``frame``: the
    model reads a pandas DataFrame of the original values rather than the matrix."""

    features: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    frame: bool = False

    @classmethod
    def fit(cls, table: pa.Table, features: Sequence[str], frame: bool) -> Codes:
        cats: dict[str, list[str]] = {}
        for name in features:
            col = table.column(name)
            if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
                if pa.types.is_boolean(col.type):
                    continue
                strings = pc.cast(_decoded(col), pa.string())
                cats[name] = sorted(v for v in pc.unique(strings).to_pylist() if v is not None)
        return cls(list(features), cats, frame or bool(cats))

    def matrix(self, table: pa.Table) -> Matrix:
        out = np.empty((table.num_rows, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            col = table.column(name)
            if name in self.categories:
                strings = pc.cast(_decoded(col), pa.string())
                idx = pc.index_in(strings, value_set=pa.array(self.categories[name], pa.string()))
                out[:, j] = np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.float64)
            else:
                values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
                out[:, j] = np.asarray(values, dtype=np.float64)
        return out

    def to_input(self, x: Matrix) -> Any:
        """The model's input for the rows of ``x``: ``x`` itself, or a DataFrame of the
        original values (categories decoded)."""
        if not self.frame:
            return x
        import pandas as pd

        data: dict[str, Any] = {}
        for j, name in enumerate(self.features):
            if name in self.categories:
                cats = np.asarray(self.categories[name] + [None], dtype=object)
                codes = np.where(np.isfinite(x[:, j]), x[:, j], len(cats) - 1).astype(np.int64)
                data[name] = cats[np.clip(codes, 0, len(cats) - 1)]
            else:
                data[name] = x[:, j]
        return pd.DataFrame(data, columns=self.features)

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "categories": self.categories, "frame": self.frame}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Codes:
        return cls(list(d["features"]), dict(d["categories"]), bool(d["frame"]))


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(col, col.type.value_type) if pa.types.is_dictionary(col.type) else col


def model_features(model: object, schema: Schema, table: pa.Table) -> list[str]:
    """The columns the model reads: its ``feature_names_in_`` when it has them, else the
    schema's input features in order."""
    named = getattr(model, "feature_names_in_", None)
    if named is not None:
        features = [str(n) for n in named]
        missing = [n for n in features if n not in table.column_names]
        if missing:
            raise InputError(f"model: reads columns that are not in the reference: {missing}")
        return features
    features = [c.name for c in schema.drift_columns() if c.role == Role.FEATURE]
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and int(n_in) != len(features):
        raise InputError(
            f"model: reads {int(n_in)} features, the reference has {len(features)} "
            f"({features}); fit it on a DataFrame so that it names them"
        )
    return features


@dataclass
class AttributionFit:
    """The attributions of a sample of the reference (``values``: rows × ``features``), the
    explainer that computes a window's, and what it explains (``source``: ``"model"`` or
    ``"surrogate"``, with the surrogate's held-out ``fidelity``)."""

    codes: Codes
    method: str
    source: str
    values: Matrix
    base: float
    fidelity: dict[str, Any] | None = None
    explainer: Explainer | None = field(default=None, repr=False)
    seed: int | None = 0
    # the null replicates of the decision already simulated, by (window rows, alpha)
    nulls: dict[tuple[int, float], Any] = field(default_factory=dict, repr=False)

    @property
    def features(self) -> list[str]:
        return self.codes.features

    @property
    def approximate(self) -> bool:
        return self.source == "surrogate"

    @property
    def shares(self) -> dict[str, float]:
        """Each feature's share of the mean |attribution| on the reference (sums to 1)."""
        mean_abs = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(0)
        total = float(mean_abs.sum())
        return {
            f: (float(v) / total if total > 0 else 0.0)
            for f, v in zip(self.features, mean_abs, strict=True)
        }

    @property
    def window_rows(self) -> int:
        return PERMUTATION_ROWS if self.method == "shap_permutation" else WINDOW_ROWS

    def explain_table(self, table: pa.Table) -> Matrix | None:
        """The attributions of (a sample of, ``window_rows`` at most) ``table``'s rows; None
        when there is no explainer (a reference loaded without its model)."""
        if self.explainer is None:
            return None
        rows = table.num_rows
        if rows > self.window_rows:
            picked = np.sort(_rng(self.seed, 13).choice(rows, self.window_rows, replace=False))
            table = table.take(pa.array(picked))
        return self.explainer.explain(self.codes.matrix(table.select(self.features))).values

    def meta(self) -> dict[str, Any]:
        return {
            "codes": self.codes.to_dict(),
            "method": self.method,
            "source": self.source,
            "base": self.base,
            "fidelity": self.fidelity,
            "seed": self.seed,
        }


def fit_attributions(
    table: pa.Table,
    schema: Schema,
    model: object | None,
    prediction: str | None,
    seed: int | None,
) -> AttributionFit:
    """Explain a sample of the reference with ``model``, or with a surrogate of it fitted on
    the ``prediction`` column when there is no model."""
    if model is not None:
        features = model_features(model, schema, table)
        codes = Codes.fit(table, features, hasattr(model, "feature_names_in_"))
        kind_of(model)  # an InputError for a model that cannot score, before anything else
        source, fidelity = "model", None
        x_all = None
    else:
        if prediction is None or prediction not in table.column_names:
            raise InputError(
                "attributions: give the model (model=...) or the prediction column "
                "(prediction=...) for a surrogate of it"
            )
        features = [
            c.name
            for c in schema.drift_columns()
            if c.role == Role.FEATURE and c.name != prediction
        ]
        if not features:
            raise InputError("attributions: the reference has no input features")
        codes = Codes.fit(table, features, False)
        x_all = codes.matrix(table.select(features))
        is_label = schema.columns[prediction].type == ColumnType.CATEGORICAL
        model, fidelity = fit_surrogate(x_all, table.column(prediction), is_label, seed)
        source = "surrogate"
    rows = table.num_rows
    picked = np.arange(rows)
    if rows > REFERENCE_ROWS:
        picked = np.sort(_rng(seed, 12).choice(rows, REFERENCE_ROWS, replace=False))
    x = (
        codes.matrix(table.select(features).take(pa.array(picked)))
        if x_all is None
        else x_all[picked]
    )
    explainer = Explainer(model, features, x, codes.to_input, seed)
    if explainer.kind == "permutation" and len(x) > PERMUTATION_ROWS:  # slow: fewer rows
        x = x[np.sort(_rng(seed, 16).choice(len(x), PERMUTATION_ROWS, replace=False))]
    explained = explainer.explain(x)
    return AttributionFit(
        codes,
        explainer.method,
        source,
        explained.values,
        float(explained.base.mean()) if len(explained.base) else 0.0,
        fidelity,
        explainer,
        seed,
    )


def fit_surrogate(
    x: Matrix, predictions: pa.ChunkedArray, is_label: bool, seed: int | None
) -> tuple[Any, dict[str, Any]]:
    """A histogram gradient boosting model of the logged ``predictions`` from ``x``, fitted on
    a random three quarters of the rows (at most ``SURROGATE_ROWS``), and its fidelity on the
    other quarter: R² (numbers) or agreement (labels)."""
    from threadpoolctl import threadpool_limits

    # a few thousand rows: one thread is as fast, and OpenMP's idle workers spin-wait for
    # seconds when other processes keep the cores busy (as in the multivariate checks)
    with threadpool_limits(1, user_api="openmp"):
        return _fit_surrogate(x, predictions, is_label, seed)


def _fit_surrogate(
    x: Matrix, predictions: pa.ChunkedArray, is_label: bool, seed: int | None
) -> tuple[Any, dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, r2_score

    y_raw = _decoded(predictions)
    keep = np.asarray(y_raw.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if is_label:
        y: Any = np.asarray(pc.cast(y_raw, pa.string()).to_numpy(zero_copy_only=False), object)
    else:
        y = np.asarray(pc.cast(y_raw, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        keep &= np.isfinite(y)
    rows = np.flatnonzero(keep)
    if len(rows) < 20:
        raise InputError(
            f"attributions: the surrogate needs at least 20 logged predictions, got {len(rows)}"
        )
    rng = _rng(seed, 14)
    rows = rng.permutation(rows)
    n_test = max(len(rows) // 4, 5)
    test, train = rows[:n_test], rows[n_test:][:SURROGATE_ROWS]
    random_state = int(rng.integers(2**31))
    model: Any
    if is_label:
        if len(set(y[train])) < 2:
            raise InputError("attributions: the logged predictions have a single class")
        model = HistGradientBoostingClassifier(**SURROGATE_PARAMS, random_state=random_state)
        model.fit(x[train], y[train])
        fidelity = {
            "metric": "agreement",
            "value": float(accuracy_score(y[test], model.predict(x[test]))),
        }
    else:
        model = HistGradientBoostingRegressor(**SURROGATE_PARAMS, random_state=random_state)
        model.fit(x[train], y[train])
        fidelity = {"metric": "r2", "value": float(r2_score(y[test], model.predict(x[test])))}
    fidelity.update({"held_out_rows": len(test), "fitted_rows": len(train)})
    return model, fidelity


def restore(
    meta: dict[str, Any],
    values: Matrix,
    table: pa.Table,
    schema: Schema,
    prediction: str | None,
    model: object | None,
) -> AttributionFit:
    """A saved reference's attributions (:meth:`AttributionFit.meta` and ``values``): the
    surrogate is fitted again (the same, given a seed); a model's explainer is rebuilt when
    the model is given, else the window's attributions are left out with a note."""
    seed = meta.get("seed")
    if meta["source"] == "surrogate":
        return fit_attributions(table, schema, None, prediction, seed)
    codes = Codes.from_dict(meta["codes"])
    fit = AttributionFit(
        codes, meta["method"], meta["source"], values, float(meta["base"]), None, None, seed
    )
    if model is not None:
        rows = table.num_rows
        picked = np.arange(rows)
        if rows > REFERENCE_ROWS:
            picked = np.sort(_rng(seed, 12).choice(rows, REFERENCE_ROWS, replace=False))
        x = codes.matrix(table.select(codes.features).take(pa.array(picked)))
        fit.explainer = Explainer(model, codes.features, x, codes.to_input, seed)
        fit.method = fit.explainer.method
    return fit
