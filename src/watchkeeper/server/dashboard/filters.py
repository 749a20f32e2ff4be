"""The query parameters every dashboard page shares: time range, version and segment.

Each bad value is an :class:`~watchkeeper.errors.InputError` (400) naming the parameter and
the value, and saying what would be accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from watchkeeper.errors import InputError
from watchkeeper.store.state import ModelInfo, NotFoundError

# preset → seconds back from now (None: everything)
RANGES: dict[str, int | None] = {
    "6h": 6 * 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "all": None,
}
RANGE_LABELS = {
    "6h": "last 6 hours",
    "24h": "last 24 hours",
    "7d": "last 7 days",
    "30d": "last 30 days",
    "all": "everything",
}
DEFAULT_RANGE = "7d"


@dataclass(frozen=True)
class TimeRange:
    """Windows whose start is in ``[start, end)``; ``key`` is a preset or ``custom``."""

    key: str
    start: int | None
    end: int | None

    @property
    def label(self) -> str:
        if self.key in RANGE_LABELS:
            return RANGE_LABELS[self.key]
        return f"{utc_text(self.start) or 'the start'} – {utc_text(self.end) or 'now'}"


def utc_text(seconds: float | None) -> str:
    """``YYYY-MM-DD HH:MM`` UTC of Unix seconds ('' for None).

    >>> utc_text(0)
    '1970-01-01 00:00'
    """
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def input_time(seconds: float | None) -> str:
    """The value of an ``<input type="datetime-local">`` (UTC) for Unix seconds."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M")


def parse_time(name: str, value: str) -> int:
    """Unix seconds, or an ISO 8601 date/time (UTC when it has no offset).

    >>> parse_time("start", "1970-01-02T00:00"), parse_time("end", "3600")
    (86400, 3600)
    """
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and 0 <= number < 1e11:
            return int(number)
        raise InputError(f"query parameter {name}: {value!r} is out of range for Unix seconds")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"query parameter {name}: {value!r} is not a time; use ISO 8601 "
            "(2024-05-01T12:00, UTC unless an offset is given) or Unix seconds"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp())


def parse_range(key: str | None, start: str | None, end: str | None, now: float) -> TimeRange:
    """The range of ``range=`` (a preset), or of ``start=`` / ``end=`` when either is given."""
    if start or end:
        lo = parse_time("start", start) if start else None
        hi = parse_time("end", end) if end else None
        if lo is not None and hi is not None and hi <= lo:
            raise InputError(f"query parameters start and end: end ({end!r}) is not after start")
        return TimeRange("custom", lo, hi)
    key = key or DEFAULT_RANGE
    if key not in RANGES:
        raise InputError(
            f"query parameter range: {key!r} is not a range; use one of {', '.join(RANGES)}"
        )
    span = RANGES[key]
    return TimeRange(key, None if span is None else int(now) - span, None)


def pick_version(info: ModelInfo, versions: list[str], version: str | None) -> str:
    """``version``, else the champion, else the newest version."""
    if version:
        if version not in versions:
            raise NotFoundError(f"model {info.name!r} has no version {version!r}")
        return version
    if info.champion:
        return info.champion
    if not versions:
        raise NotFoundError(f"model {info.name!r} has no version yet")
    return versions[-1]


def default_segment(info: ModelInfo) -> str:
    """``*`` (all segments) for a segmented model, else ``''``."""
    return "*" if info.segments else ""


def pick_segment(info: ModelInfo, known: list[str], segment: str | None) -> str:
    default = default_segment(info)
    if segment is None or segment in ("", default):
        return default
    if segment not in known:
        choices = ", ".join(repr(s) for s in known if s != default) or "none yet"
        raise InputError(
            f"query parameter segment: {segment!r} is not a segment of model {info.name!r}; "
            f"segments seen: {choices}"
        )
    return segment


def segment_label(segment: str) -> str:
    """How a segment key reads on a page.

    >>> segment_label("*"), segment_label("country=DE|plan=pro")
    ('all segments', 'country = DE, plan = pro')
    """
    if segment in ("*", ""):
        return "all segments"
    return ", ".join(part.replace("=", " = ", 1) for part in segment.split("|"))
