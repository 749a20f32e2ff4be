"""Buffered items, the wire events built from them, batches, and spool lines.

The caller's thread appends a plain tuple (cheapest to build); the sender turns it into the
JSON event of the ingest API (``docs/sdk.md``), groups events into one :class:`Batch` per
model and kind, and encodes batches for HTTP or spool lines for disk. Nothing here blocks.

A spool line is one event in JSON (``spool_line``), or, for buffered items made only of
plain values, ``M<n>:`` and a list of ``n`` items in ``marshal`` (format version 4) as
base64 (``item_lines``): about ten times cheaper to write than JSON, which matters when a
backlog is shed to disk while the caller's thread is logging. Read back, each item becomes
the same JSON event it would have been.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import marshal
import os
from binascii import a2b_base64, b2a_base64
from collections.abc import Iterable, Mapping
from itertools import chain
from operator import itemgetter
from typing import Any
from urllib.parse import quote

PREDICTION = "p"
ACTUAL = "a"
SPOOL_FORMAT = 1
_SCALARS = (str, int, float, bool, type(None))
MARSHALLED = b"M"  # the first byte of a spool line holding marshalled items
MARSHAL_VERSION = 4  # read by every Python since 3.4
# exactly these types come back from marshal as they went in (it writes a numpy integer, or
# anything else with the buffer protocol, as bytes; a subclass it refuses)
_EXACT = frozenset({str, int, float, bool, type(None)})
_EXACT_OR_DICT = _EXACT | {dict}
_ITEM_LENGTH = {"p": 12, "a": 5}
_DICT_FIELDS = itemgetter(4, 8, 9)  # a prediction's features, scores and segments
# A prediction item is (PREDICTION, model, prediction_id, timestamp, features, prediction,
# version, latency_ms, scores, segments, status, error); an actual item is
# (ACTUAL, model, prediction_id, label, timestamp).
Item = tuple[Any, ...]
Record = tuple[str, str, dict[str, Any]]  # (kind, model, wire event)


def new_prediction_id() -> str:
    """A random (version 4) UUID as 32 hex digits, about 3× cheaper than ``uuid4().hex``."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    return raw.hex()


def json_default(value: Any) -> Any:
    """Encode what ``json`` cannot: numpy scalars and arrays, times, decimals, sets."""
    if hasattr(value, "tolist"):  # numpy scalar or array, pandas/pyarrow scalars
        return value.tolist()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=json_default)


def _plain(value: Any) -> Any:
    """A prediction the server can store: scalars and class → score maps as they are, a
    numpy scalar as its Python value, anything else (a list, an array) as its JSON text."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return dumps(value)


def _timestamp(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()  # naive datetimes are local time, as in Python
    return value


def _error_text(error: Any) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def to_record(item: Item) -> Record:
    """The wire event of a buffered item: ``(kind, model, event)``."""
    if item[0] == ACTUAL:
        _, model, pid, label, ts = item
        return ACTUAL, model, {"prediction_id": pid, "label": _plain(label), "timestamp": ts}
    _, model, pid, ts, features, prediction, version, latency, scores, segments, status, err = item
    event: dict[str, Any] = {
        "prediction_id": pid,
        "timestamp": _timestamp(ts),
        "features": features,
        "prediction": _plain(prediction),
        "status": status if isinstance(status, str) else str(status),
    }
    if version is not None:
        event["version"] = str(version)
    if latency is not None:
        event["latency_ms"] = latency
    if scores is not None:
        event["scores"] = scores
    if segments is not None:
        event["segments"] = segments
    if err is not None:
        event["error"] = _error_text(err)
    return PREDICTION, model, event


class Batch:
    """Events of one kind for one model, sent in one request."""

    __slots__ = ("events", "kind", "model")

    def __init__(self, kind: str, model: str, events: list[dict[str, Any]]) -> None:
        self.kind, self.model, self.events = kind, model, events

    @property
    def path(self) -> str:
        route = "predictions" if self.kind == PREDICTION else "actuals"
        return f"/v1/models/{quote(self.model, safe='')}/{route}"

    def halves(self) -> list[Batch]:
        mid = len(self.events) // 2
        return [
            Batch(self.kind, self.model, part) for part in (self.events[:mid], self.events[mid:])
        ]

    def records(self) -> list[Record]:
        return [(self.kind, self.model, e) for e in self.events]


def group(records: Iterable[Record]) -> tuple[list[Batch], int]:
    """One batch per (kind, model), predictions first; returns the batches and the number of
    repeated prediction ids dropped (the server would reject a repeat inside one batch)."""
    batches: dict[tuple[str, str], Batch] = {}
    seen: dict[tuple[str, str], set[Any]] = {}
    repeats = 0
    for kind, model, event in records:
        key = (kind, model)
        batch = batches.get(key)
        if batch is None:
            batch = batches[key] = Batch(kind, model, [])
            seen[key] = set()
        pid = event.get("prediction_id")
        if pid in seen[key]:
            repeats += 1
            continue
        seen[key].add(pid)
        batch.events.append(event)
    ordered = sorted(batches.values(), key=lambda b: b.kind != PREDICTION)
    return ordered, repeats


def encode_body(batch: Batch) -> tuple[bytes, list[dict[str, Any]]]:
    """The request body and the events that could not be encoded (dropped by the caller)."""
    field = "events" if batch.kind == PREDICTION else "actuals"
    try:
        return dumps({field: batch.events}).encode(), []
    except (TypeError, ValueError):  # one bad event (a cycle, a NaN key): find it
        good, bad = [], []
        for event in batch.events:
            try:
                dumps(event)
            except (TypeError, ValueError):
                bad.append(event)
            else:
                good.append(event)
        batch.events = good
        return dumps({field: good}).encode(), bad


def spool_line(record: Record) -> bytes:
    """One JSON line of the spool file; raises TypeError/ValueError when not encodable."""
    kind, model, event = record
    return (dumps({"v": SPOOL_FORMAT, "k": kind, "m": model, "e": event}) + "\n").encode()


def _plain_items(items: list[Item]) -> bool:
    """Whether these items hold only plain values, and dicts of plain values (dict keys need no
    check: a key JSON refuses is refused as well after the round trip through marshal)."""
    if not set(map(type, chain.from_iterable(items))) <= _EXACT_OR_DICT:
        return False
    if set(map(len, items)) == {_ITEM_LENGTH[PREDICTION]}:  # predictions only: the usual case
        dicts: Iterable[Any] = filter(None, chain.from_iterable(map(_DICT_FIELDS, items)))
    else:
        dicts = (v for v in chain.from_iterable(items) if type(v) is dict)
    try:
        return set(map(type, chain.from_iterable(map(dict.values, dicts)))) <= _EXACT
    except TypeError:  # a string where a dict belongs (scores="x"): JSON's business
        return False


def _marshal_lines(items: list[Item], per_line: int) -> list[bytes]:
    dumps_, b64 = marshal.dumps, b2a_base64
    return [
        b"M%d:" % len(chunk) + b64(dumps_(chunk, MARSHAL_VERSION))
        for chunk in (items[i : i + per_line] for i in range(0, len(items), per_line))
    ]


def item_lines(items: list[Item], per_line: int) -> tuple[list[bytes], int]:
    """The spool lines of buffered items, in order, and how many could not be encoded at all
    (dropped by the caller). Items of plain values go ``per_line`` to a marshalled line; the
    others one to a JSON line (``spool_line``)."""
    if _plain_items(items):
        return _marshal_lines(items, per_line), 0
    lines, bad = [], 0
    for item in items:
        try:
            plain = _plain_items([item])
            lines.append(_marshal_lines([item], 1)[0] if plain else spool_line(to_record(item)))
        except (TypeError, ValueError):
            bad += 1
    return lines, bad


def line_events(line: bytes) -> int:
    """How many events a spool line holds (1 for a JSON line or an unreadable one)."""
    if line[:1] != MARSHALLED:
        return 1
    head = line[1 : line.find(b":", 1, 12)]
    return int(head) if head.isdigit() and int(head) > 0 else 1


def _parse_marshalled(line: bytes) -> list[Record] | None:
    try:
        items = marshal.loads(a2b_base64(line[line.index(b":") + 1 :]))
    except (ValueError, EOFError, TypeError):
        return None
    if type(items) is not list or len(items) != line_events(line):
        return None
    for item in items:
        if type(item) is not tuple or not item or _ITEM_LENGTH.get(item[0]) != len(item):
            return None
        if type(item[1]) is not str:
            return None
    return [to_record(item) for item in items]


def parse_spool_lines(lines: list[bytes]) -> tuple[list[Record], int]:
    """The records of spool lines, and how many events were unreadable (torn or foreign)."""
    records: list[Record] = []
    unreadable = 0
    for line in lines:
        if line[:1] == MARSHALLED:
            more = _parse_marshalled(line)
            if more is None:
                unreadable += line_events(line)
            else:
                records.extend(more)
            continue
        record = parse_spool_line(line)
        if record is None:
            unreadable += 1
        else:
            records.append(record)
    return records, unreadable


def parse_spool_line(line: bytes) -> Record | None:
    """The record of a JSON spool line, or None when the line is torn or foreign."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("k") not in (PREDICTION, ACTUAL):
        return None
    model, event = data.get("m"), data.get("e")
    if not isinstance(model, str) or not isinstance(event, dict):
        return None
    return data["k"], model, event
