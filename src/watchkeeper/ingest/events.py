"""Event batches in every accepted shape, normalised to one flat Arrow table.

Shapes (``POST /v1/models/{model}/predictions``):

* **row JSON**: ``{"events": [event, ...]}`` or a bare list, each event
  ``{"prediction_id", "timestamp", "version", "features": {...}, "prediction", "scores":
  {class: p}, "latency_ms", "status", "error", "segments": {...}}``;
* **columnar JSON**: ``{"prediction_id": [...], "features": {"age": [...], ...}, ...}``, the
  same fields with a list per field (``features``/``segments``/``scores``: a list per name);
* **Arrow IPC stream** (``application/vnd.apache.arrow.stream``) or **Parquet**
  (``application/vnd.apache.parquet``): a flat table whose columns are the reserved fields
  and the features by name (segments too, by name; scores as ``score.<class>``).

The normalised table has the reserved columns (``RESERVED``) and one column per feature,
segment and score (``score.<class>``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

from watchkeeper.errors import InputError

RESERVED = ("prediction_id", "timestamp", "version", "prediction", "latency_ms", "status", "error")
NESTED = ("features", "segments", "scores")
ARROW_TYPES = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")


class PayloadError(InputError):
    """The body cannot be read as an event batch."""


class PayloadTooLarge(InputError):
    http_status = 413


def _flat_name(group: str, key: str) -> str:
    if group == "scores":
        return f"score.{key}"
    if key in RESERVED:
        raise PayloadError(
            f"{group} name {key!r} is a reserved event field ({', '.join(RESERVED)}); "
            "rename it in the model's schema and events"
        )
    return key


def _rows_to_columns(events: list[Any]) -> dict[str, list[Any]]:
    n = len(events)
    columns: dict[str, list[Any]] = {}

    def put(name: str, i: int, value: Any) -> None:
        col = columns.get(name)
        if col is None:
            col = columns[name] = [None] * n
        col[i] = value

    for i, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise PayloadError(f"event {i}: expected a JSON object, got {type(event).__name__}")
        for key, value in event.items():
            if key in NESTED:
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    raise PayloadError(f"event {i}: {key} must be an object of name: value")
                for name, inner in value.items():
                    put(_flat_name(key, str(name)), i, inner)
            elif key == "prediction" and isinstance(value, Mapping):
                for name, inner in value.items():  # a class -> probability map
                    put(_flat_name("scores", str(name)), i, inner)
            else:
                put(str(key), i, value)
    return columns


def _rows_fast(events: list[Any]) -> pa.Table | None:
    """Row events to the flat table in Arrow's C++ (nested objects become struct columns that
    are flattened); None when the rows do not fit one Arrow type per field."""
    try:
        arr = pa.array(events)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    if not pa.types.is_struct(arr.type):
        return None
    table = pa.Table.from_struct_array(arr)
    columns: dict[str, pa.ChunkedArray] = {}
    for name in table.column_names:
        col = table.column(name)
        if name in NESTED or (name == "prediction" and pa.types.is_struct(col.type)):
            if not pa.types.is_struct(col.type):
                if col.null_count == len(col):
                    continue
                return None
            group = (
                "features" if name == "features" else "segments" if name == "segments" else "scores"
            )
            for i in range(col.type.num_fields):
                child = col.type.field(i).name
                columns[_flat_name(group, child)] = pa.chunked_array(
                    [chunk.flatten()[i] for chunk in col.chunks], col.type.field(i).type
                )
        elif pa.types.is_struct(col.type) or pa.types.is_list(col.type):
            return None
        else:
            columns[name] = col
    return pa.table(columns) if columns else None


def _columnar(body: Mapping[str, Any]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for key, value in body.items():
        if key in NESTED:
            if not isinstance(value, Mapping):
                raise PayloadError(f"{key} must be an object of name: list")
            for name, inner in value.items():
                columns[_flat_name(key, str(name))] = inner
        else:
            columns[str(key)] = value
    lengths = {k: len(v) for k, v in columns.items() if isinstance(v, list)}
    if len(lengths) != len(columns):
        bad = sorted(set(columns) - set(lengths))
        raise PayloadError(f"columnar JSON: field(s) {bad} are not lists")
    if len(set(lengths.values())) > 1:
        raise PayloadError(f"columnar JSON: lists of different lengths {lengths}")
    return columns


def _table(columns: dict[str, list[Any]]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # mixed types in one field: keep it as text; validation says which rows are bad
            arrays[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(arrays) if arrays else pa.table({"prediction_id": pa.array([], pa.string())})


def parse_batch(body: bytes, content_type: str | None) -> pa.Table:
    """Parse a request body into the flat event table."""
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind in ARROW_TYPES:
        try:
            return ipc.open_stream(pa.BufferReader(body)).read_all()
        except pa.ArrowInvalid:
            try:
                return ipc.open_file(pa.BufferReader(body)).read_all()
            except pa.ArrowInvalid as exc:
                raise PayloadError(f"body is not an Arrow IPC stream or file: {exc}") from None
    if kind in PARQUET_TYPES:
        try:
            return pq.read_table(io.BytesIO(body))
        except (pa.ArrowInvalid, OSError) as exc:
            raise PayloadError(f"body is not a Parquet file: {exc}") from None
    if kind != "application/json" and not kind.endswith("+json"):
        raise PayloadError(
            f"unsupported content type {kind!r}; use application/json, "
            f"{ARROW_TYPES[0]} or {PARQUET_TYPES[0]}"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # Python's json writes NaN and Infinity, which strict JSON parsers refuse
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, Mapping) and "events" in data:
        data = data["events"]
    if isinstance(data, list):
        fast = _rows_fast(data) if data else None
        return fast if fast is not None else _table(_rows_to_columns(data))
    if isinstance(data, Mapping):
        return _table(_columnar(data))
    raise PayloadError('JSON body must be a list of events, {"events": [...]}, or columnar')


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc(payload: bytes) -> pa.Table:
    return ipc.open_stream(pa.BufferReader(payload)).read_all()
