"""The Open Inference Protocol (v2, as KServe, Triton and Seldon MLServer speak it), in JSON.

A request names its tensors: either **one per feature** (``{"name": "age", "shape": [2, 1],
"datatype": "FP64", "data": [41.0, 37.5]}``) or **one 2-D tensor** whose columns are the
model's inputs in order (``shape [N, k]``). ``data`` is flat (row-major) or nested;
``BYTES`` data are strings. ``parameters.prediction_ids`` (a list, one per row) sets the
prediction ids; ``id`` (a string) is echoed. The response has the outputs ``predict`` (one per
row) and, for a classifier with probabilities, ``predict_proba`` (``[N, classes]``, the
classes in its ``parameters``); its ``parameters.prediction_ids`` are the ids to send the
labels with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from watchkeeper.errors import InputError
from watchkeeper.serving.oip_binary import DTYPES
from watchkeeper.serving.predict import Answer

DATATYPES = (*DTYPES, "BYTES")  # the protocol's: its numbers (with their layouts) and text


def parse_request(
    body: Any, features: list[str]
) -> tuple[dict[str, list[Any]], list[str] | None, Any, dict[str, Any]]:
    """(columns, prediction ids, the request id, parameters) of an inference request; a
    malformed one is an :class:`InputError` naming the tensor and the problem."""
    if not isinstance(body, Mapping):
        raise InputError("inference request: expected a JSON object with inputs")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inference request: inputs must be a non-empty list of tensors")
    if not isinstance(body.get("id"), str | None):
        raise InputError("inference request: id must be a string (it is echoed)")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InputError("inference request: parameters must be an object")
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(inputs):
        name, rows = _tensor(tensor, i)
        if len(inputs) == 1 and name not in features and rows.ndim == 2 and rows.shape[1] > 1:
            if rows.shape[1] != len(features):
                raise InputError(
                    f"inputs[0] {name!r}: {rows.shape[1]} columns, but the model takes "
                    f"{len(features)} inputs ({', '.join(features)})"
                )
            for j, feature in enumerate(features):
                columns[feature] = rows[:, j].tolist()
        else:
            if rows.ndim == 2 and rows.shape[1] != 1:
                raise InputError(
                    f"inputs[{i}] {name!r}: shape {list(rows.shape)}; a feature "
                    "tensor has shape [N] or [N, 1]"
                )
            columns[name] = rows.reshape(-1).tolist()
    ids = parameters.get("prediction_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(x, str) for x in ids)):
        raise InputError("parameters.prediction_ids must be a list of strings, one per row")
    return columns, ids, body.get("id"), dict(parameters)


def _tensor(tensor: Any, i: int) -> tuple[str, np.ndarray[Any, Any]]:
    if not isinstance(tensor, Mapping):
        raise InputError(f"inputs[{i}]: expected a tensor object")
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise InputError(f"inputs[{i}]: {key} is missing")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if not isinstance(name, str) or not name:
        raise InputError(f"inputs[{i}]: name must be a non-empty string")
    if datatype not in DATATYPES:
        raise InputError(f"inputs[{i}] {name!r}: datatype {datatype!r}; use one of {DATATYPES}")
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and d >= 0 for d in shape)
        and len(shape) <= 2
    ):
        raise InputError(f"inputs[{i}] {name!r}: shape must be [N] or [N, k], got {shape!r}")
    flat = _flatten(tensor["data"])
    if datatype == "BYTES":
        values = np.asarray([None if v is None else str(v) for v in flat], dtype=object)
    else:
        if any(isinstance(v, str) for v in flat):
            raise InputError(f"inputs[{i}] {name!r}: {datatype} data holds text")
        values = np.asarray(flat, dtype=object)
    expected = int(np.prod(shape))
    if values.size != expected:
        raise InputError(
            f"inputs[{i}] {name!r}: shape {shape} holds {expected} values, data has {values.size}"
        )
    return name, values.reshape(shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def response(answer: Answer, request_id: Any, requested: Any = None) -> dict[str, Any]:
    """The inference response; ``requested`` (the request's ``outputs``) picks outputs."""
    predictions = answer.predictions
    text = any(isinstance(p, str) for p in predictions)
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "shape": [len(predictions)],
            "datatype": "BYTES" if text else _datatype(predictions),
            "data": predictions,
        }
    ]
    if answer.scores is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "shape": list(answer.scores.shape),
                "datatype": "FP64",
                "parameters": {"classes": answer.classes},
                "data": answer.scores.reshape(-1).tolist(),
            }
        )
    if isinstance(requested, list) and requested:
        names = {o.get("name") for o in requested if isinstance(o, Mapping)}
        unknown = sorted(str(n) for n in names - {o["name"] for o in outputs})
        if unknown:
            raise InputError(f"outputs {unknown}: this model has predict and predict_proba")
        outputs = [o for o in outputs if o["name"] in names]
    body: dict[str, Any] = {
        "model_name": answer.model,
        "model_version": answer.version,
        "outputs": outputs,
        "parameters": {"prediction_ids": answer.prediction_ids},
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def _datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    return "FP64"
