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
    raw = {name: _array(values) for name, values in outputs.items()}
    columns = dict(zip(accepted.column_names, accepted.columns, strict=True))
    given = set(inputs)

    def source(name: str | None) -> pa.Array | None:
        return raw.get(name) if name is not None else None  # outputs win over inputs

    for col in schema.by_role(Role.PREDICTION):
        if col.name == "prediction":
            continue
        kind = col.type.value if col.type.value in ("numeric", "categorical") else "categorical"
        name = col.name if col.name in raw or col.name in given else "prediction"
        values = source(name)
        if values is not None:
            columns[col.name], _ = coerce_array(values, kind)
    for i, col in enumerate(schema.by_role(Role.SCORE)):
        score = col.name if col.name in raw or col.name in given or i else positive_score
        values = source(score)
        if values is not None:
            columns[col.name], _ = coerce_array(values, "numeric")
    for name in TEXT:
        if name in raw:
            columns[name] = as_text(raw[name])
    if "latency_ms" in raw:
        latency, _ = coerce_array(raw["latency_ms"], "numeric")
        if pc.any(pc.greater(latency, plausible.max_latency_ms)).as_py():
            return None
        columns["latency_ms"] = latency
    for name, values in raw.items():
        if name.startswith("score."):
            columns[name], _ = coerce_array(values, "numeric")
    for name in dict.fromkeys(["prediction", *(c.name for c in schema.by_role(Role.PREDICTION))]):
        values = columns.get(name)
        if name in raw and values is not None and pa.types.is_string(values.type):
            too_long = pc.greater(pc.fill_null(pc.utf8_length(values), 0), bounds.PREDICTION_CHARS)
            if pc.any(too_long).as_py() or pc.any(pc.match_substring(values, "\x00")).as_py():
                return None
    return pa.table(columns)


def _array(values: Sequence[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
