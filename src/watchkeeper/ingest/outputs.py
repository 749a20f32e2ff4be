"""A served request's outputs added to its validated inputs: one validation per request.

The serving path validates a request's inputs before the model scores them (a row that fails
the schema is refused, not scored). The events it logs are those inputs plus what the model
answered (the prediction, a score per class, the latency, the status); validating the whole
event table again would check the inputs twice. :func:`with_outputs` instead adds the
outputs to the validated table as :func:`~watchkeeper.ingest.validate.validate` would have
normalised them — the same columns, types and order, checked by a test against
``validate`` on the whole table — and checks only what can be wrong with them (a prediction
longer than the store holds or holding a NUL character, a latency above the plausible
maximum). When one is, it returns None and the caller sends the whole table through the
ingest path (``accept_table``), which validates it and quarantines what it must.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.ingest import bounds
from watchkeeper.ingest.validate import as_text
from watchkeeper.io import coerce_array
from watchkeeper.schema import Role, Schema

TEXT = ("prediction", "status", "error")  # kept as text by validate


def with_outputs(
    accepted: pa.Table,
    schema: Schema,
    outputs: Mapping[str, Sequence[Any]],
    *,
    inputs: Sequence[str],
    positive_score: str | None,
    plausible: bounds.Plausibility,
) -> pa.Table | None:
    """``accepted`` (``validate``'s table of the request's inputs, whose column names were
    ``inputs``) with the ``outputs`` (``prediction``, ``score.<class>``, ``latency_ms``,
    ``status``), normalised as ``validate`` would; None when an output needs the full
    validation (see the module)."""
    raw = dict(outputs)
    columns = dict(zip(accepted.column_names, accepted.columns, strict=True))
    given = set(inputs)

    for col in schema.by_role(Role.PREDICTION):
        if col.name == "prediction":
            continue
        kind = col.type.value if col.type.value in ("numeric", "categorical") else "categorical"
        name = col.name if col.name in raw or col.name in given else "prediction"
        if name in raw:
            columns[col.name] = _coerced(raw[name], kind)
    for i, col in enumerate(schema.by_role(Role.SCORE)):
        score = col.name if col.name in raw or col.name in given or i else positive_score
        if score is not None and score in raw:
            columns[col.name] = _coerced(raw[score], "numeric")
    for name in TEXT:
        if name in raw:
            values = raw[name]
            plain = all(v is None or type(v) is str for v in values)
            columns[name] = pa.array(values, pa.string()) if plain else as_text(_array(values))
    if "latency_ms" in raw:
        latency = _coerced(raw["latency_ms"], "numeric")
        if pc.any(pc.greater(latency, plausible.max_latency_ms)).as_py():
            return None
        columns["latency_ms"] = latency
    for name, values in raw.items():
        if name.startswith("score."):
            columns[name] = _coerced(values, "numeric")
    for name in dict.fromkeys(["prediction", *(c.name for c in schema.by_role(Role.PREDICTION))]):
        array = columns.get(name) if name in raw else None
        text = array is not None and pa.types.is_string(array.type)
        if text and not all(_storable(v) for v in array.to_pylist()):  # type: ignore[union-attr]
            return None
    return pa.table(columns)


def _storable(text: str | None) -> bool:
    """A prediction the store's text column holds as it is."""
    return text is None or (len(text) <= bounds.PREDICTION_CHARS and "\x00" not in text)


def _coerced(values: Sequence[Any], kind: str) -> pa.Array:
    """``coerce_array`` of the values, without it when they are of the kind already."""
    if kind == "numeric":
        if all(type(v) is float and math.isfinite(v) for v in values):
            return pa.array(values, pa.float64())
    elif all(type(v) is str for v in values):
        return pa.array(values, pa.string())
    return coerce_array(_array(values), kind)[0]


def _array(values: Sequence[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
