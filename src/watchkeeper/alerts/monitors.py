"""Monitor specs: what to watch and how to judge it, parsed and checked once.

A monitor names a model and a metric of its evaluated windows, and exactly one way to judge
the metric:

* ``condition: "<= 0.85"`` — a fixed threshold;
* ``change: {drops_by: "5%"}`` — relative to the reference value (``rises_by`` the other way;
  a number instead of a percentage is an absolute change in the metric's unit);
* ``band: {k: 3}`` — outside mean ± k·σ of the first ``baseline_windows`` evaluated windows;
* ``anomaly: {k: 3}`` — an anomaly of the metric's own time series (seasonal, robust);
* ``detector: {type: cusum}`` — sequential change detection on the stream of window values,
  or, for ``metric: error``, on the 0/1 error stream of the labelled predictions.

Each kind parses its own options (:mod:`watchkeeper.alerts.kinds`). Every problem raises
:class:`~watchkeeper.errors.InputError` naming the monitor and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.alerts.actions import Action, parse_action, parse_duration
from watchkeeper.alerts.kinds import KINDS
from watchkeeper.alerts.kinds import fail as _fail
from watchkeeper.alerts.kinds import integer as _int
from watchkeeper.alerts.kinds import number as _number
from watchkeeper.errors import InputError
from watchkeeper.evaluation.metrics import CATALOGUE

# metric → how its sample size is read from the window ("labels" or "count"): the catalogue's
WINDOW_METRICS = {m.name: m.sample for m in CATALOGUE.values() if not m.per_feature}
FEATURE_METRICS = {m.name: m.sample for m in CATALOGUE.values() if m.per_feature}
STREAM_METRICS = {"error": "labels"}  # the 0/1 error stream of labelled predictions
METRICS = {**WINDOW_METRICS, **FEATURE_METRICS, **STREAM_METRICS}
ALIASES = {"volume": "count", "drift_score": "drift_statistic"}

SEVERITIES = ("warning", "critical")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
READY = "ready_to_promote"  # the monitor column of a ready challenger's alert (alerts/ready.py)
FIELDS = {  # and one key per kind of KINDS
    "name",
    "model",
    "metric",
    "feature",
    "version",
    "segment",
    "severity",
    "min_samples",
    "for_windows",
    "resolve_windows",
    "hysteresis",
    "cooldown",
    "notify",
    "actions",
    "description",
}
DEFAULT_MIN_SAMPLES = 30


@dataclass(frozen=True)
class Monitor:
    """One validated monitor. ``params`` holds the options of its kind (``condition``: op and
    threshold; ``change``: direction, amount, relative, reference; ``band``/``anomaly``: k,
    side, baseline_windows; ``detector``: type and the detector's own arguments)."""

    name: str
    model: str
    metric: str
    kind: str
    params: Mapping[str, Any]
    feature: str | None = None
    version: str | None = None
    segment: str | None = None
    severity: str = "warning"
    min_samples: int = DEFAULT_MIN_SAMPLES
    for_windows: int = 1
    resolve_windows: int = 1
    hysteresis: float = 0.0
    cooldown: float = 0.0
    notify: tuple[str, ...] | None = None
    actions: tuple[Action, ...] = ()
    description: str = ""
    source: str = "api"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def sample_metric(self) -> str:
        """The window metric that holds this monitor's sample size."""
        return METRICS[self.metric]

    @property
    def per_feature(self) -> bool:
        return self.metric in FEATURE_METRICS

    def to_dict(self) -> dict[str, Any]:
        """The spec as given (normalised); :func:`parse_monitor` reads it back."""
        return dict(self.raw)

    def judging_hash(self) -> str:
        """Changes when what is judged changes (not when severity or receivers do): the
        engine then forgets the monitor's verdicts and judges its windows again."""
        keys = ("model", "metric", "feature", "version", "segment", "min_samples", "hysteresis")
        judged = {k: self.raw.get(k) for k in (*keys, *KINDS)}
        body = json.dumps(judged, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


def parse_monitor(
    raw: object,
    *,
    notifiers: Iterable[str] | None = None,
    source: str = "api",
    allow_commands: bool = False,
    index: int | None = None,
) -> Monitor:
    """Validate one monitor mapping. ``notifiers``: the configured names ``notify`` may use
    (None: not checked); ``allow_commands``: whether retrain commands are allowed (only in
    the settings file)."""
    where = f"monitors[{index}]" if index is not None else "monitor"
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: expected a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(f"{where}: name: use 1-200 letters, digits, '.', '_' or '-', got {name!r}")
    if name == READY:
        raise InputError(f"{where}: name: {READY!r} is the name of the challengers' alerts")
    unknown = sorted(set(map(str, raw)) - FIELDS - set(KINDS))
    if unknown:
        raise _fail(name, "fields", f"unknown field(s) {unknown}")
    model = raw.get("model")
    if not isinstance(model, str) or not NAME.fullmatch(model):
        raise _fail(name, "model", f"expected a model name, got {model!r}")
    metric = ALIASES.get(str(raw.get("metric")), raw.get("metric"))
    if metric not in METRICS:
        raise _fail(
            name, "metric", f"unknown metric {raw.get('metric')!r}; use one of {sorted(METRICS)}"
        )
    kinds = [k for k in KINDS if raw.get(k) is not None]
    if len(kinds) != 1:
        raise _fail(name, "kind", f"give exactly one of {', '.join(KINDS)}; got {kinds or 'none'}")
    kind = kinds[0]
    if metric in STREAM_METRICS and not KINDS[kind].sequential:
        raise _fail(name, "metric", "the error stream is judged by a detector: add detector: {...}")
    params = KINDS[kind].parse(name, raw[kind], str(metric))
    optional_str = {}
    for key in ("feature", "version", "segment", "description"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail(name, key, f"expected a string, got {value!r}")
        optional_str[key] = value
    if KINDS[kind].sequential and metric in FEATURE_METRICS and optional_str["feature"] is None:
        raise _fail(name, "feature", f"a detector on {metric} watches one feature: name it")
    if optional_str["feature"] is not None and metric not in FEATURE_METRICS:
        raise _fail(
            name,
            "feature",
            f"metric {metric!r} is not per feature; use one of {sorted(FEATURE_METRICS)}",
        )
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise _fail(name, "severity", f"use warning or critical, got {severity!r}")
    notify = raw.get("notify")
    if notify is not None:
        if isinstance(notify, str):
            notify = [notify]
        if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
            raise _fail(name, "notify", f"expected a list of notifier names, got {notify!r}")
        if notifiers is not None:
            known = set(notifiers)
            missing = [n for n in notify if n not in known]
            if missing:
                raise _fail(
                    name,
                    "notify",
                    f"unknown notifier(s) {missing}; configured: {sorted(known) or 'none'}",
                )
    actions = raw.get("actions") or []
    if not isinstance(actions, list):
        raise _fail(name, "actions", f"expected a list of actions, got {actions!r}")
    try:
        cooldown = parse_duration(raw.get("cooldown", 0), what="cooldown")
    except InputError as exc:
        raise _fail(name, "cooldown", str(exc).split(": ", 1)[1]) from None
    hysteresis = _number(name, "hysteresis", raw.get("hysteresis", 0.0))
    if hysteresis < 0:
        raise _fail(name, "hysteresis", f"must not be negative, got {hysteresis}")
    if hysteresis and not KINDS[kind].hysteresis:
        names = " and ".join(k.name for k in KINDS.values() if k.hysteresis)
        raise _fail(name, "hysteresis", f"applies to {names} monitors only")
    normal = {k: v for k, v in raw.items() if v is not None}
    normal["metric"] = metric
    return Monitor(
        name=name,
        model=model,
        metric=str(metric),
        kind=kind,
        params=params,
        feature=optional_str["feature"],
        version=optional_str["version"],
        segment=optional_str["segment"],
        severity=str(severity),
        min_samples=_int(name, "min_samples", raw.get("min_samples", DEFAULT_MIN_SAMPLES), 0),
        for_windows=_int(name, "for_windows", raw.get("for_windows", 1), 1),
        resolve_windows=_int(name, "resolve_windows", raw.get("resolve_windows", 1), 1),
        hysteresis=hysteresis,
        cooldown=cooldown,
        notify=None if notify is None else tuple(notify),
        actions=tuple(parse_action(name, i, a, allow_commands) for i, a in enumerate(actions)),
        description=optional_str["description"] or "",
        source=source,
        raw=normal,
    )


def parse_monitors(
    raw: object, *, notifiers: Iterable[str] | None = None, source: str = "config"
) -> list[Monitor]:
    """The ``monitors:`` list of the settings file; names must be unique."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InputError(f"monitors: expected a list of monitors, got {type(raw).__name__}")
    names = None if notifiers is None else list(notifiers)
    out = [
        parse_monitor(
            item, notifiers=names, source=source, allow_commands=source == "config", index=i
        )
        for i, item in enumerate(raw)
    ]
    seen: set[str] = set()
    for m in out:
        if m.name in seen:
            raise InputError(f"monitors: the name {m.name!r} is used twice")
        seen.add(m.name)
    return out
