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

Every problem raises :class:`~watchkeeper.errors.InputError` naming the monitor and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.alerts.actions import Action, parse_action, parse_duration
from watchkeeper.errors import InputError
from watchkeeper.evaluation.metrics import CATALOGUE
from watchkeeper.stats.detectors import DETECTORS

# metric → how its sample size is read from the window ("labels" or "count"): the catalogue's
WINDOW_METRICS = {m.name: m.sample for m in CATALOGUE.values() if not m.per_feature}
FEATURE_METRICS = {m.name: m.sample for m in CATALOGUE.values() if m.per_feature}
STREAM_METRICS = {"error": "labels"}  # the 0/1 error stream of labelled predictions
METRICS = {**WINDOW_METRICS, **FEATURE_METRICS, **STREAM_METRICS}
ALIASES = {"volume": "count", "drift_score": "drift_statistic"}

KINDS = ("condition", "change", "band", "anomaly", "detector")
SEVERITIES = ("warning", "critical")
SIDES = ("both", "below", "above")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
FIELDS = {
    "name",
    "model",
    "metric",
    "feature",
    "version",
    "segment",
    *KINDS,
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
DEFAULT_BASELINE_WINDOWS = 24


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


def _fail(name: str, key: str, problem: str) -> InputError:
    return InputError(f"monitor {name!r}: {key}: {problem}")


def _int(name: str, key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(name, key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _number(name: str, key: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(name, key, f"expected a number, got {value!r}")
    if positive and value <= 0:
        raise _fail(name, key, f"must be positive, got {value!r}")
    return float(value)


def _options(name: str, key: str, value: object, allowed: Iterable[str]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise _fail(name, key, f"expected a mapping of options, got {value!r}")
    unknown = sorted(set(map(str, value)) - set(allowed))
    if unknown:
        raise _fail(name, key, f"unknown option(s) {unknown}; known: {sorted(allowed)}")
    return dict(value)


def _side(name: str, key: str, opts: Mapping[str, Any]) -> str:
    side = opts.get("side", "both")
    if side not in SIDES:
        raise _fail(name, f"{key}.side", f"use one of {', '.join(SIDES)}, got {side!r}")
    return str(side)


def _kind_params(name: str, kind: str, value: object, metric: str) -> dict[str, Any]:
    if kind == "condition":
        match = CONDITION.match(str(value)) if isinstance(value, str) else None
        if not match:
            raise _fail(
                name,
                "condition",
                f"expected an operator and a number like '<= 0.85', got {value!r}",
            )
        return {"op": match.group(1), "threshold": float(match.group(2))}
    if kind == "change":
        opts = _options(name, "change", value, ("drops_by", "rises_by", "reference"))
        given = [k for k in ("drops_by", "rises_by") if k in opts]
        if len(given) != 1:
            raise _fail(name, "change", "give exactly one of drops_by and rises_by")
        raw = opts[given[0]]
        relative = isinstance(raw, str) and raw.strip().endswith("%")
        try:
            amount = float(raw.strip()[:-1]) / 100 if relative else float(raw)
        except (TypeError, ValueError):
            amount = -1.0
        if isinstance(raw, bool) or amount <= 0:
            raise _fail(
                name, f"change.{given[0]}", f"expected a positive number or '5%', got {raw!r}"
            )
        reference = opts.get("reference")
        if reference is not None:
            reference = _number(name, "change.reference", reference)
        direction = "drops" if given[0] == "drops_by" else "rises"
        return {
            "direction": direction,
            "amount": amount,
            "relative": relative,
            "reference": reference,
        }
    if kind == "band":
        opts = _options(name, "band", value, ("k", "baseline_windows", "side"))
        return {
            "k": _number(name, "band.k", opts.get("k", 3.0), positive=True),
            "baseline_windows": _int(
                name,
                "band.baseline_windows",
                opts.get("baseline_windows", DEFAULT_BASELINE_WINDOWS),
                2,
            ),
            "side": _side(name, "band", opts),
        }
    if kind == "anomaly":
        opts = _options(name, "anomaly", value, ("k", "side", "min_history", "utc_offset"))
        return {
            "k": _number(name, "anomaly.k", opts.get("k", 4.0), positive=True),
            "side": _side(name, "anomaly", opts),
            "min_history": _int(name, "anomaly.min_history", opts.get("min_history", 12), 2),
            "utc_offset": _number(name, "anomaly.utc_offset", opts.get("utc_offset", 0.0)),
        }
    # detector
    if not isinstance(value, Mapping) or "type" not in value:
        raise _fail(
            name, "detector", f"expected {{type: {'|'.join(DETECTORS)}, ...}}, got {value!r}"
        )
    opts = dict(value)
    dtype = opts.pop("type")
    if not isinstance(dtype, str) or dtype not in DETECTORS:
        raise _fail(name, "detector.type", f"use one of {', '.join(DETECTORS)}, got {dtype!r}")
    from watchkeeper.alerts.sequential import check_detector

    try:
        check_detector(str(dtype), opts, metric)
    except (TypeError, ValueError) as exc:
        raise _fail(name, "detector", str(exc)) from None
    return {"type": dtype, "options": opts}


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
    unknown = sorted(set(map(str, raw)) - FIELDS)
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
    if metric in STREAM_METRICS and kind != "detector":
        raise _fail(name, "metric", "the error stream is judged by a detector: add detector: {...}")
    params = _kind_params(name, kind, raw[kind], str(metric))
    optional_str = {}
    for key in ("feature", "version", "segment", "description"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail(name, key, f"expected a string, got {value!r}")
        optional_str[key] = value
    if kind == "detector" and metric in FEATURE_METRICS and optional_str["feature"] is None:
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
    if hysteresis and kind not in ("condition", "change"):
        raise _fail(name, "hysteresis", "applies to condition and change monitors only")
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
