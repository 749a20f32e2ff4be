"""Explaining a served model's answers: SHAP attributions of the version's artifact.

A served version is explained through the artifact the service loaded
(:mod:`watchkeeper.serving.loaders`), whatever its runtime: the explainer sees the features
as a float matrix (numbers as they are, any other feature as its index among the reference
sample's values, decoded to text before the model sees it) and scores rows with the loaded
model's ``predict`` — SHAP's permutation explainer against 50 rows of the version's reference
sample. A scikit-learn tree or linear model whose features are all numbers (skops, pickle)
is explained by its own exact explainer instead (``watchkeeper.attributions.explainers``).

What is explained is one number per row: a regressor's prediction, a binary classifier's
score of its second class, a multi-class model's score of the class it predicts. A row's
contributions sum to that number minus the expected value.

When an artifact is attached, the attribution shares of the version's reference sample are
kept with the version (``Store.set_reference_attributions``), unless a fitted ``Reference``
brought its own at registration: the evaluator ranks each window's drifted features by drift
× share with them (docs/explain.md).
"""

from __future__ import annotations

import io
import logging
import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from watchkeeper.attributions.explainers import Explainer, MissingShap, kind_of
from watchkeeper.attributions.fit import (
    REFERENCE_ROWS,
    AttributionFit,
    fit_attributions,
)
from watchkeeper.errors import InputError
from watchkeeper.io import category_text
from watchkeeper.schema import ColumnType, Role, Schema
from watchkeeper.serving.loaders import Loaded, _frame
from watchkeeper.serving.registry import ServedModels
from watchkeeper.store import tables as t
from watchkeeper.store.artifacts import get_artifact
from watchkeeper.store.state import NotFoundError, Store

log = logging.getLogger(__name__)
MAX_ROWS = 100  # rows explained per request
SHARE_ROWS = 100  # reference sample rows whose attributions give the shares (permutation)
DEFAULT_TOP = 5


@dataclass
class Explanation:
    """The attributions of rows: ``values[i, j]`` is feature ``j``'s contribution to row
    ``i``'s explained output above ``base[i]``."""

    features: list[str]
    inputs: dict[str, list[Any]]
    values: np.ndarray[Any, Any]
    base: np.ndarray[Any, Any]
    output: np.ndarray[Any, Any]
    method: str
    explained: str  # what the output is: "prediction" or "score of class <c>"

    def rows(self, top: int) -> list[dict[str, Any]]:
        """Per row: the explained output, the expected value and the ``top`` contributions,
        largest |contribution| first."""
        out = []
        for i in range(len(self.values)):
            order = np.argsort(-np.abs(self.values[i]), kind="stable")[:top]
            out.append(
                {
                    "output": float(self.output[i]),
                    "expected_value": float(self.base[i]),
                    "contributions": [
                        {
                            "feature": self.features[j],
                            "value": _plain(self.inputs[self.features[j]][i]),
                            "contribution": float(self.values[i, j]),
                        }
                        for j in order
                    ],
                }
            )
        return out


class _Scorer:
    """The loaded model as the explainer calls it: rows of codes → one score per row (or a
    score per class)."""

    def __init__(self, loaded: Loaded, decode: Callable[[np.ndarray[Any, Any]], dict[str, Any]]):
        self.loaded, self.decode = loaded, decode

    def __call__(self, x: Any) -> np.ndarray[Any, Any]:
        columns = self.decode(np.asarray(x, dtype=np.float64))
        model = self.loaded.model
        if self.loaded.format in ("skops", "pickle") and hasattr(model, "predict_proba"):
            # the scores only (Loaded.predict runs the model twice: predictions and scores)
            frame = _frame(model, self.loaded.features, columns)
            return np.asarray(model.predict_proba(frame), dtype=np.float64)
        scored = self.loaded.predict(columns)
        if scored.scores is not None:
            return np.asarray(scored.scores, dtype=np.float64)
        return np.asarray(scored.predictions, dtype=np.float64)


class ServedExplainer:
    """The explainer of one loaded version (see the module docstring)."""

    def __init__(self, loaded: Loaded, schema: Schema, sample: pa.Table) -> None:
        self.loaded = loaded
        self.features = list(loaded.features)
        missing = [f for f in self.features if f not in sample.column_names]
        if missing:
            raise InputError(f"the version's reference sample lacks the model's inputs {missing}")
        self.numeric = {f for f in self.features if _is_numeric(schema, f)}
        self.categories: dict[str, list[str]] = {}
        for f in self.features:
            if f not in self.numeric:
                seen = {category_text(v) for v in sample.column(f).to_pylist()}
                self.categories[f] = sorted(v for v in seen if v is not None)
        self._lock = threading.Lock()
        self.background = self.matrix({f: sample.column(f).to_pylist() for f in self.features})
        model: object = _Scorer(loaded, self.decode)
        if (
            loaded.format in ("skops", "pickle")
            and not self.categories
            and kind_of(loaded.model) in ("tree", "linear")
        ):
            model = loaded.model  # its own exact explainer
        self.direct = model is loaded.model
        self.explainer = Explainer(model, self.features, self.background, self._to_input, 0)
        classes = loaded.classes
        self.explained = (
            "prediction"
            if not classes
            else f"score of class {classes[1]}"
            if len(classes) == 2
            else "score of the predicted class"
        )

    def _to_input(self, x: np.ndarray[Any, Any]) -> Any:
        if getattr(self.loaded.model, "feature_names_in_", None) is not None:
            import pandas as pd

            return pd.DataFrame(x, columns=self.features)
        return x

    def matrix(self, columns: dict[str, list[Any]]) -> np.ndarray[Any, Any]:
        """The rows as the explainer sees them; a category not in the reference sample is
        added to the feature's values (so that it reaches the model as it was given)."""
        n = len(columns[self.features[0]]) if self.features else 0
        out = np.empty((n, len(self.features)), dtype=np.float64)
        for j, f in enumerate(self.features):
            values = columns[f]
            if f in self.numeric:
                out[:, j] = [np.nan if v is None else float(v) for v in values]
                continue
            cats = self.categories[f]
            with self._lock:
                for v in values:
                    text = category_text(v)
                    if text is not None and text not in cats:
                        cats.append(text)
                index = {c: k for k, c in enumerate(cats)}
            out[:, j] = [np.nan if (t := category_text(v)) is None else index[t] for v in values]
        return out

    def decode(self, x: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
        """Rows of codes → the loaded model's input: an array per feature."""
        columns: dict[str, np.ndarray[Any, Any]] = {}
        for j, f in enumerate(self.features):
            if f in self.numeric:
                columns[f] = x[:, j].astype(np.float64)
            else:
                cats = self.categories[f]
                columns[f] = np.asarray(
                    [cats[int(c)] if np.isfinite(c) else None for c in x[:, j]], dtype=object
                )
        return columns

    def explain(self, columns: dict[str, list[Any]]) -> Explanation:
        x = self.matrix(columns)
        done = self.explainer.explain(x)
        return Explanation(
            self.features,
            columns,
            done.values,
            done.base,
            done.output,
            self.explainer.method,
            self.explained,
        )

    def shares(self) -> dict[str, Any]:
        """The attribution shares of (a random sample of) the reference sample's rows."""
        rows = SHARE_ROWS if self.explainer.kind == "permutation" else REFERENCE_ROWS
        x = self.background
        if len(x) > rows:
            x = x[np.sort(np.random.default_rng((0, 12)).choice(len(x), rows, replace=False))]
        values = self.explainer.explain(x).values
        mean_abs = np.abs(values).mean(axis=0) if len(values) else np.zeros(len(self.features))
        total = float(mean_abs.sum())
        return {
            "shares": {
                f: (float(v) / total if total > 0 else 0.0)
                for f, v in zip(self.features, mean_abs, strict=True)
            },
            "source": "model",
            "method": self.explainer.method,
            "fidelity": None,
            "origin": "artifact",
            "rows": len(x),
        }


class Explainers:
    """The explainers of the served versions, built on first use and again when the
    version's model is loaded again (a new artifact)."""

    def __init__(self, served: ServedModels) -> None:
        self.served = served
        self._built: dict[tuple[str, str], tuple[int, ServedExplainer]] = {}
        self._lock = threading.Lock()

    def get(self, model: str, version: str) -> ServedExplainer:
        loaded = self.served.get(model, version)  # 404 without an artifact
        key = (model, version)
        with self._lock:
            found = self._built.get(key)
            if found is not None and found[0] == id(loaded):
                return found[1]
            schema: Schema = self.served.meta.version(model, version).schema
            built = ServedExplainer(
                loaded, schema, reference_sample(self.served.store, model, version)
            )
            self._built[key] = (id(loaded), built)
            return built


def reference_sample(store: Store, model: str, version: str) -> pa.Table:
    """The version's reference sample (a few thousand rows kept at registration)."""
    blob = store.version(model, version).get("reference_sample")
    if blob is None:
        raise NotFoundError(f"model {model!r} version {version!r} keeps no reference sample")
    return pq.read_table(io.BytesIO(bytes(blob)))


def keep_shares_later(explainers: Explainers, model: str, version: str) -> threading.Thread:
    """:func:`keep_shares` in a thread of its own: attaching the artifact does not wait (a
    permutation explainer of a slow pipeline takes seconds to tens of seconds)."""
    thread = threading.Thread(
        target=keep_shares, args=(explainers, model, version), name="wk-shares", daemon=True
    )
    thread.start()
    return thread


def keep_shares(explainers: Explainers, model: str, version: str) -> dict[str, Any] | None:
    """After an artifact is attached: keep the attribution shares of its reference sample with
    the version (drift impact), unless a fitted Reference gave them at registration. None
    (logged) when they cannot be computed — SHAP missing, a model that fails: attaching the
    artifact does not fail for them."""
    store = explainers.served.store
    current = store.reference_attributions(model, version)
    if current is not None and current.get("origin", "reference") == "reference":
        return current
    try:  # loaded apart: the served model is loaded on its first request, as always
        served = explainers.served
        schema: Schema = served.meta.version(model, version).schema
        explainer = ServedExplainer(
            served.load_apart(model, version), schema, reference_sample(store, model, version)
        )
        shares = explainer.shares()
    except MissingShap as exc:
        log.info("no drift impact for %s %s: %s", model, version, exc)
        return None
    except Exception:
        log.exception("the attribution shares of %s %s failed", model, version)
        return None
    store.set_reference_attributions(model, version, shares)
    return shares


def input_columns(data: Any, features: list[str], numeric: set[str]) -> dict[str, list[Any]]:
    """The body of ``/explain`` (``{"rows": [...]}`` or ``{"columns": {...}}``, as
    ``/predict`` takes it) as a list of values per model input, checked: 400 naming the field."""
    if not isinstance(data, dict) or ("rows" in data) == ("columns" in data):
        raise InputError('explain body: expected {"rows": [...]} or {"columns": {...}}')
    if "rows" in data:
        rows = data["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError("rows: expected a list of objects of feature: value")
        columns = {n: [r.get(n) for r in rows] for n in features if any(n in r for r in rows)}
        n = len(rows)
    else:
        given = data["columns"]
        if not isinstance(given, dict) or not all(isinstance(v, list) for v in given.values()):
            raise InputError("columns: expected an object of feature: [values]")
        lengths = {k: len(v) for k, v in given.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"columns: inputs of different lengths: {lengths}")
        columns = {k: list(v) for k, v in given.items() if k in features}
        n = next(iter(lengths.values()), 0)
    missing = [f for f in features if f not in columns]
    if missing:
        raise InputError(f"the request lacks the model's input(s) {missing}")
    if n == 0:
        raise InputError("rows: the request has no rows")
    if n > MAX_ROWS:
        raise InputError(f"rows: {n} rows; /explain takes at most {MAX_ROWS} per request")
    for f in numeric:
        for i, v in enumerate(columns[f]):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"{f}: row {i}: expected a number, got {v!r}")
    return columns


def _is_numeric(schema: Schema, name: str) -> bool:
    column = schema.columns.get(name)
    return column is not None and column.type == ColumnType.NUMERIC


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------ a logged prediction
def logged_event(
    store: Store, lake_dir: Path, model: str, prediction_id: str
) -> tuple[str, pa.Table]:
    """The version and the logged event of ``prediction_id`` (one row, as the lake keeps it):
    found in the prediction index, read from its batch's file. 404 when the id is not indexed
    (unknown, not processed yet, or removed by retention)."""
    p = t.predictions.c
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(p.version, p.batch_id).where(
                (p.model == model) & (p.prediction_id == prediction_id)
            )
        ).first()
    if row is None:
        store.model(model)  # 404 naming an unknown model first
        raise NotFoundError(
            f"model {model!r} has no logged prediction {prediction_id!r} (not processed yet, "
            "or removed by retention)"
        )
    root = lake_dir / f"model={model}" / f"version={row.version}"
    for path in sorted(root.glob(f"date=*/batch-{int(row.batch_id):012d}-*.parquet")):
        table = pq.read_table(path)
        ids = pc.cast(table.column("prediction_id"), pa.string())
        found = table.filter(pc.equal(ids, prediction_id))
        if found.num_rows:
            return str(row.version), found.slice(0, 1)
    raise NotFoundError(
        f"model {model!r}: the events of prediction {prediction_id!r} are no longer in the lake"
    )


class Surrogates:
    """A surrogate of each version without an artifact, fitted on its reference sample's
    logged predictions once (``watchkeeper.attributions.fit_attributions``)."""

    def __init__(self) -> None:
        self._fits: dict[tuple[str, str], AttributionFit] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, model: str, version: str) -> AttributionFit:
        with self._lock:
            fit = self._fits.get((model, version))
            if fit is None:
                schema, _ = store.reference(model, version)
                predictions = schema.by_role(Role.PREDICTION)
                if not predictions:
                    raise NotFoundError(
                        f"model {model!r} version {version!r} has no artifact and its reference "
                        "no prediction column to fit a surrogate on"
                    )
                sample = reference_sample(store, model, version)
                fit = fit_attributions(sample, schema, None, predictions[0].name, 0)
                self._fits[(model, version)] = fit
            return fit


def explain_logged(
    served: ServedModels, model: str, prediction_id: str, top: int
) -> dict[str, Any]:
    """The explanation of a logged prediction: by the version's artifact when it has one, else
    by a surrogate of the version (approximate, with its fidelity)."""
    version, event = logged_event(served.store, served.settings.lake_dir, model, prediction_id)
    record = event.to_pylist()[0]
    schema, _ = served.store.reference(model, version)
    names = [c.name for c in schema.by_role(Role.PREDICTION)] + ["prediction"]
    prediction = next((record[n] for n in names if record.get(n) is not None), None)
    has_artifact = get_artifact(served.store, model, version) is not None
    if has_artifact:
        explainer = explainers_of(served).get(model, version)
        missing = [f for f in explainer.features if f not in record]
        if missing:
            raise InputError(f"the logged event lacks the model's input(s) {missing}")
        columns = {f: [record[f]] for f in explainer.features}
        done = explainer.explain(columns)
        row = done.rows(top)[0]
        return {
            "model": model,
            "version": version,
            "prediction_id": prediction_id,
            "method": done.method,
            "explained": done.explained,
            "source": "model",
            "approximate": False,
            "fidelity": None,
            "rows": [{"prediction": _plain(prediction), **row}],
        }
    fit = surrogates_of(served).get(served.store, model, version)
    assert fit.explainer is not None
    missing = [f for f in fit.features if f not in event.column_names]
    if missing:
        raise InputError(f"the logged event lacks the input(s) {missing}")
    by_surrogate = fit.explainer.explain(fit.codes.matrix(event.select(fit.features)))
    explanation = Explanation(
        fit.features,
        {f: [record[f]] for f in fit.features},
        by_surrogate.values,
        by_surrogate.base,
        by_surrogate.output,
        fit.method,
        "the surrogate's prediction",
    )
    return {
        "model": model,
        "version": version,
        "prediction_id": prediction_id,
        "method": fit.method,
        "explained": explanation.explained,
        "source": "surrogate",
        "approximate": True,
        "fidelity": fit.fidelity,
        "rows": [{"prediction": _plain(prediction), **explanation.rows(top)[0]}],
    }


_EXPLAINERS: weakref.WeakKeyDictionary[ServedModels, Explainers] = weakref.WeakKeyDictionary()
_SURROGATES: weakref.WeakKeyDictionary[ServedModels, Surrogates] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def explainers_of(served: ServedModels) -> Explainers:
    """The explainers of a server's served models."""
    with _GUARD:
        if served not in _EXPLAINERS:
            _EXPLAINERS[served] = Explainers(served)
        return _EXPLAINERS[served]


def surrogates_of(served: ServedModels) -> Surrogates:
    with _GUARD:
        if served not in _SURROGATES:
            _SURROGATES[served] = Surrogates()
        return _SURROGATES[served]
