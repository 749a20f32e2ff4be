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
(:func:`watchkeeper.stats.anomaly.seasonal_anomaly`). Sequential detectors are in
:mod:`watchkeeper.alerts.sequential`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from watchkeeper.alerts.monitors import DEFAULT_BASELINE_WINDOWS, Monitor
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


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


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def threshold_verdict(
    op: str, threshold: float, value: float, hysteresis: float
) -> tuple[bool, bool]:
    """(breach, healthy) of ``value`` against ``op threshold``; ``healthy`` needs the value
    ``hysteresis`` past the threshold on the good side.

    >>> threshold_verdict("<=", 0.85, 0.86, 0.02)
    (False, False)
    >>> threshold_verdict("<=", 0.85, 0.88, 0.02)
    (False, True)
    """
    breach = OPS[op](value, threshold)
    if op in ("<=", "<"):
        healthy = value >= threshold + hysteresis if hysteresis else not breach
    elif op in (">=", ">"):
        healthy = value <= threshold - hysteresis if hysteresis else not breach
    else:
        healthy = not breach
    return breach, healthy


def change_threshold(params: Mapping[str, Any], reference: float) -> tuple[str, float]:
    """(operator, threshold) of a ``change`` monitor given the reference value.

    >>> change_threshold({"direction": "drops", "amount": 0.05, "relative": True}, 0.9)
    ('<', 0.855)
    """
    amount = params["amount"] * (abs(reference) if params["relative"] else 1.0)
    if params["direction"] == "drops":
        return "<", round(reference - amount, 12)
    return ">", round(reference + amount, 12)


def change_text(params: Mapping[str, Any], op: str, threshold: float, reference: float) -> str:
    size = f"{params['amount'] * 100:g}%" if params["relative"] else _fmt(params["amount"])
    word = "drops" if params["direction"] == "drops" else "rises"
    return f"{op} {_fmt(threshold)} ({word} by more than {size} from {_fmt(reference)})"


def _outside(side: str, value: float, low: float, high: float) -> bool:
    below, above = value < low, value > high
    return below if side == "below" else above if side == "above" else below or above


def judge_series(
    monitor: Monitor,
    target: str,
    values: Mapping[int, float | None],
    samples: Mapping[int, float | None],
    windows: Sequence[int],
    *,
    reference: float | None = None,
) -> list[Verdict]:
    """Verdicts of ``windows`` for one target of a condition/change/band/anomaly monitor.

    ``values`` and ``samples`` hold the target's whole series (window start → value, sample
    size); ``reference`` is the reference value of a ``change`` monitor (None: the mean of the
    first ``baseline_windows`` judged windows is used instead)."""
    eligible = [
        w
        for w in sorted(values)
        if values[w] is not None and (samples.get(w) or 0) >= monitor.min_samples
    ]
    ok = set(eligible)
    out: list[Verdict] = []
    p = monitor.params
    baseline: list[int] = []
    if monitor.kind == "band" or (monitor.kind == "change" and reference is None):
        baseline = eligible[: int(p.get("baseline_windows", DEFAULT_BASELINE_WINDOWS))]
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
        if monitor.kind == "condition":
            v.breach, v.healthy = threshold_verdict(
                p["op"], p["threshold"], value, monitor.hysteresis
            )
            v.detail.update(condition=f"{p['op']} {_fmt(p['threshold'])}", threshold=p["threshold"])
        elif monitor.kind == "change":
            ref = reference
            if ref is None:
                if (
                    len(baseline) < int(p.get("baseline_windows", DEFAULT_BASELINE_WINDOWS))
                    or w in baseline
                ):
                    v.detail["reason"] = f"learning the baseline ({len(baseline)} windows)"
                    continue
                ref = sum(float(values[b] or 0.0) for b in baseline) / len(baseline)
            op, threshold = change_threshold(p, ref)
            v.breach, v.healthy = threshold_verdict(op, threshold, value, monitor.hysteresis)
            v.detail.update(
                condition=change_text(p, op, threshold, ref), threshold=threshold, reference=ref
            )
        elif monitor.kind == "band":
            if len(baseline) < p["baseline_windows"] or w in baseline:
                v.detail["reason"] = (
                    f"learning the band ({len(baseline)} of {p['baseline_windows']} windows)"
                )
                continue
            from watchkeeper.stats.anomaly import band

            low, high = band([float(values[b] or 0.0) for b in baseline], p["k"])
            v.breach = _outside(p["side"], value, low, high)
            v.healthy = not v.breach
            v.detail.update(
                condition=f"outside band [{_fmt(low)}, {_fmt(high)}]",
                threshold=low if value < low else high,
                low=low,
                high=high,
            )
        elif monitor.kind == "anomaly":
            history = [b for b in eligible if b < w]
            if len(history) < p["min_history"]:
                v.detail["reason"] = f"learning ({len(history)} of {p['min_history']} windows)"
                continue
            from watchkeeper.stats.anomaly import seasonal_anomaly

            r = seasonal_anomaly(
                [float(b) for b in history],
                [float(values[b] or 0.0) for b in history],
                float(w),
                value,
                k=p["k"],
                utc_offset=p["utc_offset"],
            )
            v.breach = bool(r.is_anomaly) and _outside(p["side"], value, r.low, r.high)
            v.healthy = not v.breach
            v.detail.update(
                condition=(
                    f"anomaly: outside [{_fmt(r.low)}, {_fmt(r.high)}], expected {_fmt(r.expected)}"
                ),
                threshold=r.low if value < r.low else r.high,
                low=r.low,
                high=r.high,
                expected=r.expected,
                score=r.score,
                season=r.season,
                n_history=r.n_history,
            )
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
