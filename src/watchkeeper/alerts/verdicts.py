"""Verdicts: one monitor's judgement of one window — breach, healthy, or not judged.

A window is *judged* only when it has a value and at least ``min_samples`` samples (labels for
the performance metrics, events for the others). A judged window ``breach``es the monitor's
condition or not; it is ``healthy`` when it is past the resolve condition, which differs from
"not a breach" only by the ``hysteresis`` margin of threshold monitors (a value in between
keeps the alert as it is). The lifecycle (:mod:`watchkeeper.alerts.engine`) reads the latest
verdicts of each target.

Kinds: a fixed ``condition``; a ``change`` from the reference value; a ``band`` of mean ± k·σ
of the first ``baseline_windows`` judged windows (those windows themselves are the baseline
and are not judged); an ``anomaly`` of the series against its own earlier windows
(:func:`watchkeeper.stats.anomaly.seasonal_anomaly`). Each kind judges a window in
:mod:`watchkeeper.alerts.kinds`; sequential detectors read the stream in
:mod:`watchkeeper.alerts.sequential`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts.kinds import KINDS, Series, change_threshold, threshold_verdict
from watchkeeper.alerts.monitors import Monitor
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

__all__ = ["Verdict", "change_threshold", "judge_series", "points", "threshold_verdict"]


@dataclass
class Verdict:
    target: str
    window_start: int
    value: float | None
    sample_size: int | None
    breach: bool | None  # None: not judged
    healthy: bool | None
    detail: dict[str, Any] = field(default_factory=dict)  # condition, threshold, band, ...
    state: dict[str, Any] | None = None  # a detector's state after this window

    @property
    def judged(self) -> bool:
        return self.breach is not None


def judge_series(
    monitor: Monitor,
    target: str,
    values: Mapping[int, float | None],
    samples: Mapping[int, float | None],
    windows: Sequence[int],
    *,
    reference: float | None = None,
) -> list[Verdict]:
    """Verdicts of ``windows`` for one target of a monitor whose kind judges window values.

    ``values`` and ``samples`` hold the target's whole series (window start → value, sample
    size); ``reference`` is the reference value of a kind that reads one (``change``; None:
    the mean of the first ``baseline_windows`` judged windows is used instead)."""
    eligible = [
        w
        for w in sorted(values)
        if values[w] is not None and (samples.get(w) or 0) >= monitor.min_samples
    ]
    ok = set(eligible)
    kind = KINDS[monitor.kind]
    series = Series(values, eligible, reference, monitor.hysteresis)
    out: list[Verdict] = []
    for w in windows:
        value, size = values.get(w), samples.get(w)
        n = None if size is None else int(size)
        v = Verdict(target, w, value, n, None, None)
        out.append(v)
        if w not in ok or value is None:
            v.detail["reason"] = (
                "no value" if value is None else f"fewer than {monitor.min_samples} samples"
            )
            continue
        kind.judge(monitor.params, v, value, series)
    return out


def points(
    store: Store,
    model: str,
    version: str,
    segment: str,
    metric: str,
    feature: str | None,
    window_seconds: int,
) -> dict[str, dict[int, float | None]]:
    """feature → window start → value of one metric (every feature when ``feature`` is None),
    on the model's windows (not the daily points retention keeps of older days)."""
    mp = t.metric_points.c
    q = sa.select(mp.feature, mp.window_start, mp.value).where(
        (mp.model == model)
        & (mp.version == version)
        & (mp.segment == segment)
        & (mp.metric == metric)
        & (mp.window_seconds == window_seconds)
    )
    if feature is not None:
        q = q.where(mp.feature == feature)
    out: dict[str, dict[int, float | None]] = {}
    with store.engine.connect() as conn:
        for f, w, v in conn.execute(q):
            out.setdefault(f, {})[int(w)] = None if v is None else float(v)
    return out
