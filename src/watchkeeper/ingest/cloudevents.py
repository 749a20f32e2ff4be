"""A CloudEvents target for serving frameworks' request loggers (KServe ``logger.url``,
Seldon Core v1 payload logging).

Binary mode (attributes in ``ce-*`` headers, the model payload as the body) and structured
mode (``application/cloudevents+json``) are accepted. Request and response events are joined
by the event id (``ce-id``; Seldon's ``ce-requestid`` when present). The model comes from the
``inferenceservicename`` or ``modelid`` attribute, or ``?model=``; the version from
``?version=`` or the ``modelversion`` attribute, else the champion. Each half is stored until
its partner arrives; then the pair becomes prediction events and goes through the same
validation and durable log as any other batch.

Payloads: KServe V1 (``{"instances": [...]}`` → ``{"predictions": [...]}``) and the Open
Inference Protocol V2 (``{"inputs": [{"name", "shape", "datatype", "data"}]}`` →
``{"outputs": [...]}``). Instances given as objects are features by name; instances given as
lists map onto the model's feature columns in schema order. A batch of n rows becomes
predictions ``<id>-item-<i>``, as Seldon's request logger names them.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from watchkeeper.errors import InputError
from watchkeeper.ingest.accept import accept
from watchkeeper.schema import Role, Schema
from watchkeeper.settings import Settings
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

REQUEST_SUFFIX = "inference.request"
RESPONSE_SUFFIX = "inference.response"


def read_event(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The CloudEvent's attributes and its data bytes, from either content mode."""
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/cloudevents+json":
        try:
            envelope = json.loads(body)
        except ValueError as exc:
            raise InputError(f"structured CloudEvent is not JSON: {exc}") from None
        if not isinstance(envelope, dict):
            raise InputError("structured CloudEvent: expected a JSON object")
        if envelope.get("data_base64") is not None:
            try:
                data = base64.b64decode(envelope.pop("data_base64"))
            except (ValueError, TypeError) as exc:
                raise InputError(f"CloudEvent data_base64 is not base64: {exc}") from None
        else:
            envelope.pop("data_base64", None)
            data = json.dumps(envelope.pop("data", None)).encode()
        attrs = {str(k).lower(): v for k, v in envelope.items()}
    else:
        attrs = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
        data = body
    missing = [a for a in ("id", "type") if not attrs.get(a)]
    if missing:
        raise InputError(f"CloudEvent without {' and '.join(missing)} (ce-{missing[0]} header)")
    stored = ("id", "type", "requestid", "modelversion", "inferenceservicename", "modelid")
    nul = [a for a in stored if "\x00" in str(attrs.get(a))]
    if nul:
        raise InputError(f"CloudEvent {nul[0]}: contains a NUL character (U+0000)")
    kind = str(attrs["type"])
    if kind.endswith(REQUEST_SUFFIX):
        attrs["kind"] = "request"
    elif kind.endswith(RESPONSE_SUFFIX):
        attrs["kind"] = "response"
    else:
        raise InputError(
            f"CloudEvent type {kind!r}: expected *.{REQUEST_SUFFIX} or *.{RESPONSE_SUFFIX}"
        )
    attrs["join_id"] = str(attrs.get("requestid") or attrs["id"])
    return {"attrs": attrs, "data": data}


def _event_time(attrs: Mapping[str, Any]) -> float | None:
    value = attrs.get("time")
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _seldon_rows(message: Mapping[str, Any]) -> list[Any]:
    """Rows of a Seldon Core v1 protocol message: ``{"data": {"names", "ndarray" | "tensor"}}``.

    With names, a row of as many values becomes a mapping (features by name; for a response,
    class -> probability, Seldon's default names ``t:0``, ``t:1``, ... read as the classes
    0, 1, ...)."""
    data = message["data"]
    if "ndarray" in data:
        rows = list(data["ndarray"])
    elif "tensor" in data:
        tensor = data["tensor"]
        values = list(tensor.get("values", []))
        shape = tensor.get("shape", [len(values)])
        width = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        rows = (
            values if width == 1 else [values[i : i + width] for i in range(0, len(values), width)]
        )
    else:
        raise InputError("Seldon message: data has neither 'ndarray' nor 'tensor'")
    names = [n[2:] if re.fullmatch(r"t:\d+", str(n)) else str(n) for n in data.get("names") or []]
    if names and all(isinstance(r, list) and len(r) == len(names) for r in rows):
        return [dict(zip(names, r, strict=True)) for r in rows]
    return rows


def _rows(payload: Any, key_v1: str, key_v2: str) -> list[Any]:
    if isinstance(payload, Mapping):
        if isinstance(payload.get("data"), Mapping):  # Seldon Core v1's own protocol
            return _seldon_rows(payload)
        if key_v1 in payload:
            return list(payload[key_v1])
        if key_v2 in payload:  # OIP v2: a list of named tensors, row-major
            tensors = payload[key_v2]
            if len(tensors) == 1 and key_v2 == "outputs":
                t0 = tensors[0]
                shape = t0.get("shape", [len(t0["data"])])
                width = int(shape[1]) if len(shape) > 1 else 1
                data = t0["data"]
                return (
                    data
                    if width == 1
                    else [data[i : i + width] for i in range(0, len(data), width)]
                )
            columns = {}
            for tensor in tensors:
                shape = tensor.get("shape", [len(tensor["data"])])
                n = int(shape[0])
                width = len(tensor["data"]) // max(n, 1)
                data = tensor["data"]
                columns[tensor["name"]] = (
                    data if width == 1 else [data[i * width : (i + 1) * width] for i in range(n)]
                )
            n = len(next(iter(columns.values()), []))
            if len(columns) == 1:
                return list(next(iter(columns.values())))
            return [{name: col[i] for name, col in columns.items()} for i in range(n)]
    raise InputError(
        f"payload has neither {key_v1!r} (V1), {key_v2!r} (V2) nor 'data' (Seldon protocol)"
    )


def pair_to_events(
    join_id: str,
    request: dict[str, Any],
    response: dict[str, Any],
    schema: Schema,
) -> list[dict[str, Any]]:
    """Prediction events from a joined request/response pair."""
    try:
        req, resp = json.loads(request["body"]), json.loads(response["body"])
    except ValueError as exc:
        raise InputError(f"CloudEvent {join_id}: payload is not JSON: {exc}") from None
    instances, outputs = _rows(req, "instances", "inputs"), _rows(resp, "predictions", "outputs")
    if len(instances) != len(outputs):
        raise InputError(
            f"CloudEvent {join_id}: {len(instances)} inputs but {len(outputs)} outputs"
        )
    names = [c.name for c in schema.columns.values() if c.role in (Role.FEATURE, Role.SEGMENT)]
    start, end = request.get("event_time"), response.get("event_time")
    latency = (end - start) * 1000 if start is not None and end is not None else None
    events = []
    for i, (inst, out) in enumerate(zip(instances, outputs, strict=True)):
        if isinstance(inst, Mapping):
            features = dict(inst)
        elif isinstance(inst, list):
            features = dict(zip(names, inst, strict=False))
        else:
            features = {names[0]: inst} if names else {}
        event: dict[str, Any] = {
            "prediction_id": join_id if len(instances) == 1 else f"{join_id}-item-{i}",
            "features": features,
            "latency_ms": latency,
        }
        if start is not None:
            event["timestamp"] = start
        if isinstance(out, Mapping):
            event["scores"] = {str(k): v for k, v in out.items()}
            event["prediction"] = max(out, key=lambda k: out[k]) if out else None
        elif isinstance(out, list):  # class probabilities in class order
            event["prediction"] = int(max(range(len(out)), key=lambda k: out[k])) if out else None
        else:
            event["prediction"] = out
        events.append(event)
    return events


def accept_half(
    store: Store, model: str, version: str | None, event: dict[str, Any]
) -> dict[str, Any] | None:
    """Store one half durably; when its partner is there too, return the pair. The caller
    ingests the pair and then calls ``finish_pair``: a crash in between leaves both halves,
    and the retried event ingests again, which the prediction-id index makes idempotent."""
    attrs = event["attrs"]
    kind, join_id = attrs["kind"], attrs["join_id"]
    other = "response" if kind == "request" else "request"
    c = t.cloudevents_pending.c
    row = {
        "model": model,
        "event_id": join_id,
        "kind": kind,
        "received_at": time.time(),
        "event_time": _event_time(attrs),
        "version": version,
        "body": event["data"],
    }

    def body(conn: sa.Connection) -> dict[str, Any] | None:
        found = (
            conn.execute(
                sa.select(t.cloudevents_pending).where(
                    (c.model == model) & (c.event_id == join_id) & (c.kind == other)
                )
            )
            .mappings()
            .first()
        )
        conn.execute(
            t.cloudevents_pending.delete().where(
                (c.model == model) & (c.event_id == join_id) & (c.kind == kind)
            )
        )
        conn.execute(t.cloudevents_pending.insert().values(**row))
        return None if found is None else dict(found)

    mate = store.write(body)
    if mate is None:
        return None
    pair: dict[str, Any] = {kind: row, other: mate}
    pair["version"] = version or mate["version"]
    pair["join_id"] = join_id
    return pair


def finish_pair(store: Store, model: str, join_id: str) -> None:
    c = t.cloudevents_pending.c

    def body(conn: sa.Connection) -> None:
        conn.execute(
            t.cloudevents_pending.delete().where((c.model == model) & (c.event_id == join_id))
        )

    store.write(body)


def accept_cloudevent(
    store: Store,
    settings: Settings,
    headers: Mapping[str, str],
    body: bytes,
    model: str | None,
    version: str | None,
) -> dict[str, Any]:
    """Accept one CloudEvent (a request or a response half of a prediction): stored until its
    partner comes, then the pair is accepted as prediction events like any other batch."""
    event = read_event(headers, body)
    attrs = event["attrs"]
    model = model or attrs.get("inferenceservicename") or attrs.get("modelid")
    if not model:
        raise InputError("no model: set ?model= or the inferenceservicename/modelid attribute")
    info = store.model(str(model))
    version = version or attrs.get("modelversion")
    pair = accept_half(store, info.name, version, event)
    if pair is None:
        return {"status": "waiting", "id": attrs["join_id"], "kind": attrs["kind"]}
    use = pair["version"] or info.champion
    if use is None:
        raise InputError(f"model {info.name!r} has no version yet")
    schema = store.reference(info.name, use)[0]
    events = pair_to_events(pair["join_id"], pair["request"], pair["response"], schema)
    for e in events:
        e["version"] = use
    result = accept(
        store, settings, info.name, json.dumps({"events": events}).encode(), "application/json"
    )
    finish_pair(store, info.name, pair["join_id"])
    return {"status": "joined", "id": pair["join_id"], **result.to_dict()}
