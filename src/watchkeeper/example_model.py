"""The example churn model: a scikit-learn pipeline trained on a table of the example data.

:func:`train` fits it on any table with the example's features (``examples.py``) and a 0/1
target — the training reference, or the window a retraining job exported (its label column is
``label``). The demo serves it through watchkeeper, and its retraining command is this module::

    python -m watchkeeper.example_model DATASET OUTPUT

which trains on ``DATASET`` (Parquet) and writes the model to ``OUTPUT`` in the skops format.

The pipeline takes the features as one 2-D array in :data:`FEATURES` order (it is fit on an
array, not a DataFrame, so serving it needs no pandas): the numeric ones imputed with their
scaled and missing values (``balance`` has some) imputed from the five nearest training rows,
``country``, ``plan`` and ``is_active`` (as text) one-hot encoded ignoring categories never
seen in training
(``plan="family"`` after the drift), then a logistic regression. Every step is a scikit-learn
type whose skops file needs no other type trusted (``SimpleImputer`` would: it keeps a
``numpy.dtype``, which the serving loader refuses by default), so a retrained model loads as
it is.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.errors import InputError
from watchkeeper.io import category_text

# the example's features in the order of its schema (the order a served model is fed)
FEATURES = (
    "age",
    "income",
    "tenure_months",
    "credit_score",
    "balance",
    "num_products",
    "country",
    "plan",
    "is_active",
)
# fed as text: the inference endpoint passes every non-numeric feature as text ("true")
CATEGORICAL = ("country", "plan", "is_active")
TARGETS = ("label", "churned")  # a retraining job's export names the target ``label``


def features(table: pa.Table) -> np.ndarray[Any, Any]:
    """The model's input: the features of ``table`` as one object array, in :data:`FEATURES`
    order, as the inference endpoint passes them: numbers as floats (missing ones NaN), the
    others as text, a boolean as ``"true"`` (as the lake keeps ``is_active`` in an exported
    window)."""
    missing = [name for name in FEATURES if name not in table.column_names]
    if missing:
        raise InputError(f"the table has no column(s) {missing}; the model needs {list(FEATURES)}")
    columns = []
    for name in FEATURES:
        column = table.column(name)
        if name in CATEGORICAL:
            columns.append(np.array([_text(v) for v in column.to_pylist()], dtype=object))
        else:
            columns.append(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    out = np.empty((table.num_rows, len(FEATURES)), dtype=object)
    for i, values in enumerate(columns):
        out[:, i] = values
    return out


def _text(value: Any) -> str | None:
    """A categorical value as the inference endpoint passes it to the model and the lake keeps
    it (:func:`watchkeeper.io.category_text`): a boolean is ``"true"``/``"false"``."""
    return category_text(value)


def target(table: pa.Table) -> np.ndarray[Any, Any]:
    """The 0/1 target of ``table``: its ``label`` column, else ``churned``."""
    for name in TARGETS:
        if name in table.column_names:
            column = table.column(name)
            if column.null_count:
                raise InputError(f"the target column {name!r} has {column.null_count} nulls")
            return np.asarray(column.cast(pa.int64()).to_numpy())
    raise InputError(f"the table has no target column: one of {list(TARGETS)}")


def pipeline() -> Any:
    """The untrained pipeline (see the module docstring)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import KNNImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [i for i, name in enumerate(FEATURES) if name not in CATEGORICAL]
    categorical = [FEATURES.index(name) for name in CATEGORICAL]
    prepare = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("scale", StandardScaler()), ("impute", KNNImputer(n_neighbors=5))]),
                numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=1000))])


def train(table: pa.Table) -> Any:
    """The pipeline fit on ``table`` (the example's features and a 0/1 target)."""
    y = target(table)
    if len(np.unique(y)) < 2:
        raise InputError(f"the target has one class only ({table.num_rows} rows): nothing to learn")
    return pipeline().fit(features(table), y)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m watchkeeper.example_model DATASET OUTPUT", file=sys.stderr)
        return 2
    import skops.io as sio

    dataset, output = Path(argv[0]), Path(argv[1])
    started = time.perf_counter()
    table = pq.read_table(dataset)
    try:
        model = train(table)
    except InputError as exc:
        print(f"{dataset}: {exc}", file=sys.stderr)
        return 1
    sio.dump(model, output)
    print(
        f"trained on {table.num_rows} rows of {dataset.name} in "
        f"{time.perf_counter() - started:.2f} s; wrote {output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
