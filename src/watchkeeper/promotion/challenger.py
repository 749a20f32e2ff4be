"""Retrain → challenger: the model a retraining command wrote becomes a version in shadow.

The retraining job (``alerts/retrain.py``) exports the alert's labelled window and runs the
command with ``{output}``; when the command wrote a model file there, :func:`from_job`
registers it as a new version of the model — named ``retrain-<job id>``, with the job
version's schema and the exported window as its reference (the data it was trained on) —
attaches the file as its artifact (``serving/artifacts.py``: checked against the schema; an
ONNX or skops file, a pickle is refused) and makes the version a shadow challenger. The
verdict then decides, on live traffic, whether it replaces the champion.

**The reference is the new model's.** The window's prediction and score columns are what the
*old* version answered; the new version's training baseline and prediction-drift reference
must be its own answers, so the window's inputs are scored with the new model first (loaded as
the server will serve it) and its predictions and scores replace the old ones.

**Its inputs are the old version's.** The new model is fed the inputs the job's version's
artifact took, in that order — a segment column the champion was fed included — and, when
that version has no artifact, the schema's features.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.errors import InputError
from watchkeeper.io import coerce_array
from watchkeeper.schema import ColumnType, Role, Schema
from watchkeeper.store import promotion as states

if TYPE_CHECKING:
    from watchkeeper.serving.loaders import Scored
    from watchkeeper.settings import Settings
    from watchkeeper.store.state import Store

ZIP_MAGIC = b"PK\x03\x04"  # a skops file is a zip archive; anything else is read as ONNX
EVENT_FIELDS = {Role.PREDICTION: "prediction", Role.TARGET: "label"}  # the export's names


def from_job(
    store: Store,
    settings: Settings,
    job: Mapping[str, Any],
    dataset: Path | None,
    output: Path,
) -> str:
    """Register, attach and shadow the model ``output`` of retraining ``job``; returns a
    line for the job's log."""
    from watchkeeper.ingest.registry import register, target_classes
    from watchkeeper.serving.artifacts import attach, schema_features
    from watchkeeper.serving.loaders import load
    from watchkeeper.store.artifacts import get_artifact

    if dataset is None or not dataset.is_file():
        raise InputError("the job exported no labelled window to use as the reference")
    model, version = job["model"], f"retrain-{job['id']}"
    schema, profile = store.reference(model, job["version"])
    data = output.read_bytes()
    fmt = "skops" if data[:4] == ZIP_MAGIC else "onnx"
    previous = get_artifact(store, model, job["version"])
    features = list(previous["features"]) if previous and previous["features"] else None
    loaded = load(fmt, path=output, features=features or schema_features(schema))
    window = pq.read_table(dataset)
    scored = loaded.predict(model_inputs(window, schema, loaded.features))
    reference = _reference(window, schema)
    reference = with_answers(reference, schema, scored, target_classes(schema, profile))
    register(store, settings, model, reference, version=version, schema=schema, champion=False)
    attach(store, settings, model, version, data=data, fmt=fmt, features=features)
    states.challenge(
        store, model, version, mode="shadow", detail={"by": "retrain", "job_id": job["id"]}
    )
    return (
        f"registered {output.name} ({fmt}) as version {version} of {model!r} with "
        f"{reference.num_rows} reference rows scored by it, in shadow"
    )


def model_inputs(
    table: pa.Table, schema: Schema, features: list[str]
) -> dict[str, np.ndarray[Any, Any]]:
    """The columns ``features`` of ``table`` as a served model gets them: numbers as floats
    (missing ones NaN), anything else as the lake's text (a boolean ``"true"``)."""
    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise InputError(
            f"the exported window has no column(s) {missing} the new model takes as inputs"
        )
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name in features:
        column = schema.columns.get(name)
        if column is not None and column.type == ColumnType.NUMERIC:
            values, _ = coerce_array(table.column(name), "numeric")
            out[name] = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
        else:
            values, _ = coerce_array(table.column(name), "categorical")
            out[name] = np.asarray(values.to_pylist(), dtype=object)
    return out


def with_answers(
    table: pa.Table, schema: Schema, scored: Scored, classes: list[str] | None
) -> pa.Table:
    """``table`` with the schema's prediction columns holding ``scored``'s predictions, and its
    first score column the new model's probability of the positive class (a binary target's
    class that sorts last), when the model gives scores; other score columns are emptied (the
    old model's scores are not the new one's)."""
    for column in schema.by_role(Role.PREDICTION):
        numeric = column.type == ColumnType.NUMERIC
        values = [
            None if p is None else (float(p) if numeric else str(p)) for p in scored.predictions
        ]
        table = _put(table, column.name, pa.array(values, pa.float64() if numeric else pa.string()))
    positive = _positive_scores(scored, classes)
    for i, column in enumerate(schema.by_role(Role.SCORE)):
        given = positive if i == 0 and positive is not None else None
        table = _put(table, column.name, pa.array(given, pa.float64()) if given is not None
                     else pa.nulls(table.num_rows, pa.float64()))  # fmt: skip
    return table


def _positive_scores(scored: Scored, classes: list[str] | None) -> list[float] | None:
    if scored.scores is None or classes is None or classes[-1] not in scored.classes:
        return None
    j = scored.classes.index(classes[-1])
    return [float(s) for s in scored.scores[:, j]]


def _put(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _reference(table: pa.Table, schema: Schema) -> pa.Table:
    """The exported window in the schema's column names (the export names the prediction
    ``prediction`` and the label ``label``)."""
    columns = {}
    for name, column in schema.columns.items():
        source = name if name in table.column_names else EVENT_FIELDS.get(column.role)
        if source is not None and source in table.column_names:
            columns[name] = table.column(source)
    return pa.table(columns)
