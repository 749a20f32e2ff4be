"""What the store can hold and what is plausible: the limits ingest validation checks.

Store limits come from the table definitions (:mod:`watchkeeper.store.tables`), here and only
here: an event the store could not hold is rejected with its reason instead of being
acknowledged and then failing the processor. Plausibility limits (:class:`Plausibility`) are
settings: timestamps far from the ingest time (milliseconds given as seconds, a century off),
negative or huge latencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from watchkeeper.store import tables


def _chars(column: sa.Column[Any]) -> int:
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), f"{column} has no length"
    return length


def _int_range(column: sa.Column[Any]) -> tuple[int, int]:
    """The values an integer column holds on every backend (PostgreSQL's sizes)."""
    bits = (
        64
        if isinstance(column.type, sa.BigInteger)
        else 16
        if isinstance(column.type, sa.SmallInteger)
        else 32
    )
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


ID_CHARS = min(_chars(tables.predictions.c.prediction_id), _chars(tables.actuals.c.prediction_id))
PREDICTION_CHARS = _chars(tables.predictions.c.prediction)
SEGMENT_CHARS = _chars(tables.predictions.c.segment)  # the key ``name=value|name=value``
LABEL_CHARS = _chars(tables.actuals.c.label)
# an event's bucket (its window start, in epoch seconds) is stored in an integer column;
# a day is kept clear at either end, the longest granularity a bucket is floored to
_LOW, _HIGH = _int_range(tables.predictions.c.bucket)
EVENT_TIME_RANGE = (float(_LOW + 86400), float(_HIGH))


def fit_id(prediction_id: object) -> object:
    """A rejected event's id as the quarantine's column holds it: its first ``ID_CHARS``."""
    return prediction_id[:ID_CHARS] if isinstance(prediction_id, str) else prediction_id


@dataclass(frozen=True)
class Plausibility:
    """The settings ``max_event_age_days``, ``max_event_lead_seconds`` and ``max_latency_ms``:
    an event's timestamp must lie between that many days before and seconds after the time
    it is received; ``latency_ms`` between 0 and the maximum."""

    max_event_age_days: float = 3650.0
    max_event_lead_seconds: float = 86400.0
    max_latency_ms: float = 86_400_000.0

    @classmethod
    def from_settings(cls, settings: object) -> Plausibility:
        defaults = cls()
        return cls(
            **{
                name: getattr(settings, name, getattr(defaults, name))
                for name in ("max_event_age_days", "max_event_lead_seconds", "max_latency_ms")
            }
        )
