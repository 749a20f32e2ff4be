"""Sequential change detection for monitors with ``detector: {type: ...}``.

Two streams: the metric's value per window (windows with at least ``min_samples`` samples), or,
for ``metric: error``, the 0/1 error stream of the labelled predictions (1 = the prediction
differs from its label), ordered by event time within each window.

The detector's state after each window is stored with that window's verdict. Late labels that
re-evaluate window W replay the stream from W, starting from the state stored for the window
before it, so the result is what one pass over the final data would give. A window ``breach``es
when the detector signalled a change while reading it; it is ``healthy`` when it did not.

Types: the names of :data:`watchkeeper.stats.detectors.DETECTORS` (``cusum``: Bernoulli CUSUM
on the error stream, in-control rate ``p0`` by default the reference's error rate; Gaussian
CUSUM on a metric stream; ``calibrated``, ``adwin``, ``page_hinkley``); the other keys of
``detector:`` are the detector's own arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from watchkeeper.alerts.monitors import Monitor
from watchkeeper.alerts.verdicts import Verdict, points
from watchkeeper.stats.detectors import DETECTORS, Detector, detector_from_dict
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store


def new_detector(store: Store, m: Monitor, version: str) -> Detector:
    kind, binary = DETECTORS[m.params["type"]], m.metric == "error"
    options = dict(m.params["options"])
    if binary and kind.reference_rate and options.get(kind.reference_rate) is None:
        from watchkeeper.alerts.reference import reference_value

        accuracy = reference_value(store, m.model, version, "accuracy", "")
        if accuracy is not None and 0 < 1 - accuracy < 1:
            # the reference error rate; else learnt in a warm-up
            options[kind.reference_rate] = 1 - accuracy
    return kind.build(options, binary=binary)


def error_stream(
    store: Store, model: str, version: str, segment: str, start: int, end: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """0/1 per labelled prediction of [start, end), in event-time order."""
    p, a = t.predictions.c, t.actuals.c
    q = (
        sa.select(p.prediction, a.label)
        .join(t.actuals, (a.model == p.model) & (a.prediction_id == p.prediction_id))
        .where(
            (p.model == model)
            & (p.version == version)
            & (p.event_time >= start)
            & (p.event_time < end)
            & (a.status == "matched")
        )
        .order_by(p.event_time, p.prediction_id)
    )
    if segment not in ("", "*"):
        q = q.where(p.segment == segment)
    with store.engine.connect() as conn:
        pairs = conn.execute(q).all()
    return np.array([float(pred is None or str(pred) != label) for pred, label in pairs])


def judge_detector(
    store: Store,
    m: Monitor,
    version: str,
    segment: str,
    windows: Sequence[int],
    window_seconds: int,
) -> list[Verdict]:
    """Verdicts of every window from the first changed one on (the stream is replayed)."""
    target = m.feature or ""
    first = min(windows)
    ev, mw = t.evaluations.c, t.monitor_windows.c
    with store.engine.connect() as conn:
        evaluated = sorted(
            int(w)
            for w in conn.execute(
                sa.select(ev.window_start).where(
                    (ev.model == m.model) & (ev.version == version) & (ev.segment == segment)
                )
            ).scalars()
        )
        before = conn.execute(
            sa.select(mw.window_start, mw.state)
            .where(
                (mw.monitor == m.name)
                & (mw.target == target)
                & (mw.version == version)
                & (mw.segment == segment)
                & (mw.window_start < first)
                & mw.state.is_not(None)
            )
            .order_by(mw.window_start.desc())
            .limit(1)
        ).first()
    # every replayed window stores its state; a window in between without one (never
    # replayed) means the chain is broken: replay everything from a new detector
    gap = before is not None and any(before.window_start < w < first for w in evaluated)
    if before is None or gap:
        detector, start = new_detector(store, m, version), (evaluated[0] if evaluated else first)
    else:
        detector, start = detector_from_dict(before.state), first
    replay = [w for w in evaluated if w >= start]
    values: dict[int, float | None] = {}
    samples: dict[int, float | None] = {}
    if m.metric != "error":
        args = (store, m.model, version, segment)
        values = points(*args, m.metric, m.feature, window_seconds).get(target, {})
        samples = points(*args, m.sample_metric, "", window_seconds).get("", {})
    out = []
    for w in replay:
        n: int | None
        if m.metric == "error":
            xs = error_stream(store, m.model, version, segment, w, w + window_seconds)
            value, n = (float(xs.mean()) if xs.size else None), int(xs.size)
            usable = xs.size > 0 and n >= m.min_samples
        else:
            value, size = values.get(w), samples.get(w)
            n = None if size is None else int(size)
            usable = value is not None and (n or 0) >= m.min_samples
            xs = np.array([value]) if usable else np.array([])
        v = Verdict(target, w, value, n, None, None)
        if usable:
            hits = detector.update_many(xs)
            v.breach, v.healthy = bool(hits.size), not hits.size
            v.detail = {
                "condition": f"change detected by {m.params['type']}",
                "detector": m.params["type"],
                "detections": int(hits.size),
                "n_seen": int(detector.n_seen),
            }
        else:
            v.detail = {
                "reason": f"fewer than {m.min_samples} samples" if value is not None else "no value"
            }
        v.state = detector.to_dict()
        out.append(v)
    return out
