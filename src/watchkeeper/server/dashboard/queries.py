"""The dashboard's reads: only the columns and rows a page shows.

Every query is shaped for an index the state store has: metric points are found by
``(model, metric, window_start)`` (``ix_wk_points``) — always with the metric named, so the
index is used — and evaluations and bucket profiles by their primary keys, which start with
the model. A page never reads every metric point of a model: the features table reads one
window's points, and its sparklines at most :data:`SPARK_POINTS` windows.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from watchkeeper.errors import InputError
from watchkeeper.profiles import MAGIC, DatasetProfile
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

SPARK_POINTS = 48  # windows per sparkline: evenly spaced over the range, the last one always
DECODED_PROFILES = 8  # window profiles kept decoded, by content (:func:`decode_profile`)


@dataclass(frozen=True)
class Scope:
    """What a page looks at: one model version, one segment, windows in ``[start, end)``."""

    model: str
    version: str
    segment: str
    start: int | None = None
    end: int | None = None

    def points(self, *metrics: str) -> Any:
        """The WHERE clause of this scope's metric points of ``metrics``."""
        mp = t.metric_points.c
        where = (
            (mp.model == self.model)
            & (mp.metric.in_(metrics) if len(metrics) > 1 else mp.metric == metrics[0])
            & (mp.version == self.version)
            & (mp.segment == self.segment)
        )
        if self.start is not None:
            where &= mp.window_start >= self.start
        if self.end is not None:
            where &= mp.window_start < self.end
        return where


def summaries(store: Store, scope: Scope) -> dict[int, dict[str, Any]]:
    """Window start → the evaluator's summary (``events``, ``labels``, ``drifted``,
    ``checked``) of every evaluated window in the scope, oldest first."""
    ev = t.evaluations.c
    q = sa.select(ev.window_start, ev.summary).where(
        (ev.model == scope.model) & (ev.version == scope.version) & (ev.segment == scope.segment)
    )
    if scope.start is not None:
        q = q.where(ev.window_start >= scope.start)
    if scope.end is not None:
        q = q.where(ev.window_start < scope.end)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(ev.window_start)).all()
    return {int(w): s if isinstance(s, dict) else {} for w, s in rows}


def windows(store: Store, scope: Scope) -> list[int]:
    """Start times of the evaluated windows in the scope, oldest first."""
    ev = t.evaluations.c
    q = sa.select(ev.window_start).where(
        (ev.model == scope.model) & (ev.version == scope.version) & (ev.segment == scope.segment)
    )
    if scope.start is not None:
        q = q.where(ev.window_start >= scope.start)
    if scope.end is not None:
        q = q.where(ev.window_start < scope.end)
    with store.engine.connect() as conn:
        return [int(w) for w in conn.execute(q.order_by(ev.window_start)).scalars()]


def latest_window(store: Store, scope: Scope) -> int | None:
    """The newest evaluated window of the scope, or None."""
    ev = t.evaluations.c
    q = sa.select(sa.func.max(ev.window_start)).where(
        (ev.model == scope.model) & (ev.version == scope.version) & (ev.segment == scope.segment)
    )
    with store.engine.connect() as conn:
        value = conn.execute(q).scalar()
    return None if value is None else int(value)


def segments(store: Store, model: str) -> list[str]:
    """Segment keys of the model's evaluated windows (``*`` is all segments)."""
    ev = t.evaluations.c
    q = sa.select(ev.segment).where(ev.model == model).distinct()
    with store.engine.connect() as conn:
        return sorted(str(s) for s in conn.execute(q).scalars())


def scalar_series(
    store: Store, scope: Scope, metrics: Sequence[str]
) -> dict[str, dict[int, float | None]]:
    """Model-level series (feature ``''``): metric → window start → value."""
    mp = t.metric_points.c
    q = sa.select(mp.metric, mp.window_start, mp.value).where(
        scope.points(*metrics) & (mp.feature == "")
    )
    out: dict[str, dict[int, float | None]] = {m: {} for m in metrics}
    with store.engine.connect() as conn:
        for metric, start, value in conn.execute(q):
            out[metric][int(start)] = value
    return out


def detail_series(
    store: Store, scope: Scope, metrics: Sequence[str], feature: str = ""
) -> dict[str, dict[int, tuple[float | None, Any]]]:
    """Series with their points' detail: metric → window start → (value, detail)."""
    mp = t.metric_points.c
    q = sa.select(mp.metric, mp.window_start, mp.value, mp.detail).where(
        scope.points(*metrics) & (mp.feature == feature)
    )
    out: dict[str, dict[int, tuple[float | None, Any]]] = {m: {} for m in metrics}
    with store.engine.connect() as conn:
        for metric, start, value, detail in conn.execute(q):
            out[metric][int(start)] = (value, detail)
    return out


def feature_series(
    store: Store, scope: Scope, metrics: Sequence[str], feature: str
) -> dict[str, list[tuple[int, float | None, Any]]]:
    """metric → (window start, value, detail) of one feature, oldest first; the metrics in
    one query (without an index on the feature, that is one scan instead of one each)."""
    mp = t.metric_points.c
    q = sa.select(mp.metric, mp.window_start, mp.value, mp.detail).where(
        scope.points(*metrics) & (mp.feature == feature)
    )
    out: dict[str, list[tuple[int, float | None, Any]]] = {m: [] for m in metrics}
    with store.engine.connect() as conn:
        for metric, start, value, detail in conn.execute(q.order_by(mp.window_start)):
            out[metric].append((int(start), value, detail))
    return out


def window_points(
    store: Store, scope: Scope, window_start: int, metrics: Sequence[str]
) -> list[tuple[str, str, float | None, Any]]:
    """(metric, feature, value, detail) of the points of one window."""
    mp = t.metric_points.c
    one = Scope(scope.model, scope.version, scope.segment)
    q = sa.select(mp.metric, mp.feature, mp.value, mp.detail).where(
        one.points(*metrics) & (mp.window_start == window_start)
    )
    with store.engine.connect() as conn:
        return [(m, f, v, d) for m, f, v, d in conn.execute(q)]


def sample(starts: Sequence[int], points: int = SPARK_POINTS) -> list[int]:
    """At most ``points`` of ``starts``, evenly spaced, the first and the last included.

    >>> sample(list(range(10)), 4)
    [0, 3, 6, 9]
    """
    if len(starts) <= points:
        return list(starts)
    step = (len(starts) - 1) / (points - 1)
    return [starts[round(i * step)] for i in range(points)]


def sampled_series(
    store: Store, scope: Scope, metric: str, starts: Sequence[int]
) -> dict[str, dict[int, float | None]]:
    """feature → window start → value of ``metric`` at the windows ``starts`` only."""
    if not starts:
        return {}
    mp = t.metric_points.c
    one = Scope(scope.model, scope.version, scope.segment)
    q = sa.select(mp.feature, mp.window_start, mp.value).where(
        one.points(metric) & mp.window_start.in_(list(starts))
    )
    out: dict[str, dict[int, float | None]] = {}
    with store.engine.connect() as conn:
        for feature, start, value in conn.execute(q):
            out.setdefault(feature, {})[int(start)] = value
    return out


def window_profile(
    store: Store, scope: Scope, granularity: int, bucket: int
) -> DatasetProfile | None:
    """The bucket profile of one window (or day) of the scope, or None."""
    bp = t.bucket_profiles.c
    q = sa.select(bp.profile).where(
        (bp.model == scope.model)
        & (bp.version == scope.version)
        & (bp.segment == scope.segment)
        & (bp.granularity == granularity)
        & (bp.bucket == bucket)
    )
    with store.engine.connect() as conn:
        blob = conn.execute(q).scalar()
    return None if blob is None else decode_profile(blob)


@functools.lru_cache(maxsize=DECODED_PROFILES)
def decode_profile(blob: bytes) -> DatasetProfile:
    """``DatasetProfile.from_bytes`` with orjson: the same format, parsed in a third of the
    time (a profile of 100 columns is ~600 kB of JSON).

    The last profiles decoded are kept under their bytes: a page shown again (the newest
    window's, every few seconds on a watched dashboard) reads its profile but does not parse
    it again, and a profile that changed (late events) is parsed afresh. The pages only read
    the profile they get, so one object can serve them all."""
    if not blob.startswith(MAGIC):
        raise InputError("not a watchkeeper profile: the header is missing")
    text = zlib.decompress(blob[len(MAGIC) :])
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:  # a NaN written by json.dumps: orjson refuses it
        data = json.loads(text)
    return DatasetProfile.from_dict(data)


def quarantine_count(store: Store, model: str) -> int:
    q = sa.select(sa.func.count()).where(t.quarantine.c.model == model)
    with store.engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def promotion_marks(store: Store, model: str) -> list[tuple[float, str]]:
    """(time, label) of each promotion and rollback in the model's history, for the time
    axis of its charts."""
    from watchkeeper.store.history import history

    events = history(store, model, kinds=("promoted", "rolled_back"), limit=100)
    return [
        (
            e["at"],
            f"{e['version']} promoted" if e["kind"] == "promoted" else f"back to {e['version']}",
        )
        for e in reversed(events)
    ]
