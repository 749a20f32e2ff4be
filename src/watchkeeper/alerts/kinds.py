"""Monitor kinds: how a monitor judges its metric, one class each, registered in :data:`KINDS`.

A kind parses its options from the monitor's spec (``condition: "<= 0.85"``,
``band: {k: 3}``...) into ``params``, and judges one window of a target's series from them.
``sequential`` kinds (the detectors) are judged on the whole stream by
:mod:`watchkeeper.alerts.sequential` instead. A new kind is one class here and its entry in
:data:`KINDS`; :mod:`~watchkeeper.alerts.monitors` and the engine read the flags.

Every problem raises :class:`~watchkeeper.errors.InputError` naming the monitor and the field.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from watchkeeper.errors import InputError
from watchkeeper.stats.detectors import DETECTORS

if TYPE_CHECKING:
    from watchkeeper.alerts.verdicts import Verdict

SIDES = ("both", "below", "above")
CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
DEFAULT_BASELINE_WINDOWS = 24
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


def fail(name: str, key: str, problem: str) -> InputError:
    return InputError(f"monitor {name!r}: {key}: {problem}")


def integer(name: str, key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise fail(name, key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def number(name: str, key: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(name, key, f"expected a number, got {value!r}")
    if positive and value <= 0:
        raise fail(name, key, f"must be positive, got {value!r}")
    return float(value)


def _options(name: str, key: str, value: object, allowed: Iterable[str]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise fail(name, key, f"expected a mapping of options, got {value!r}")
    unknown = sorted(set(map(str, value)) - set(allowed))
    if unknown:
        raise fail(name, key, f"unknown option(s) {unknown}; known: {sorted(allowed)}")
    return dict(value)


def _side(name: str, key: str, opts: Mapping[str, Any]) -> str:
    side = opts.get("side", "both")
    if side not in SIDES:
        raise fail(name, f"{key}.side", f"use one of {', '.join(SIDES)}, got {side!r}")
    return str(side)


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


@dataclass(frozen=True)
class Series:
    """One target's series as a kind judges a window of it: every value, the windows with a
    value and enough samples (in order), the reference value and the monitor's hysteresis."""

    values: Mapping[int, float | None]
    eligible: list[int]
    reference: float | None
    hysteresis: float

    def mean(self, windows: Iterable[int]) -> float:
        xs = [float(self.values[w] or 0.0) for w in windows]
        return sum(xs) / len(xs)


class Kind:
    """``hysteresis``: the option applies; ``reference``: judged against the metric's reference
    value (``Series.reference``); ``sequential``: judged on the stream, may read ``error``."""

    name: ClassVar[str]
    hysteresis: ClassVar[bool] = False
    reference: ClassVar[bool] = False
    sequential: ClassVar[bool] = False

    def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
        raise NotImplementedError

    def judge(self, p: Mapping[str, Any], v: Verdict, value: float, s: Series) -> None:
        """Set ``v.breach``, ``v.healthy`` and ``v.detail`` (or only ``detail["reason"]``)."""
        raise NotImplementedError


class Condition(Kind):
    name, hysteresis = "condition", True

    def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
        match = CONDITION.match(str(value)) if isinstance(value, str) else None
        if not match:
            raise fail(
                name,
                "condition",
                f"expected an operator and a number like '<= 0.85', got {value!r}",
            )
        return {"op": match.group(1), "threshold": float(match.group(2))}

    def judge(self, p: Mapping[str, Any], v: Verdict, value: float, s: Series) -> None:
        v.breach, v.healthy = threshold_verdict(p["op"], p["threshold"], value, s.hysteresis)
        v.detail.update(condition=f"{p['op']} {_fmt(p['threshold'])}", threshold=p["threshold"])


class Change(Kind):
    name, hysteresis, reference = "change", True, True

    def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
        opts = _options(name, "change", value, ("drops_by", "rises_by", "reference"))
        given = [k for k in ("drops_by", "rises_by") if k in opts]
        if len(given) != 1:
            raise fail(name, "change", "give exactly one of drops_by and rises_by")
        raw = opts[given[0]]
        relative = isinstance(raw, str) and raw.strip().endswith("%")
        try:
            amount = float(raw.strip()[:-1]) / 100 if relative else float(raw)
        except (TypeError, ValueError):
            amount = -1.0
        if isinstance(raw, bool) or amount <= 0:
            raise fail(
                name, f"change.{given[0]}", f"expected a positive number or '5%', got {raw!r}"
            )
        reference = opts.get("reference")
        if reference is not None:
            reference = number(name, "change.reference", reference)
        direction = "drops" if given[0] == "drops_by" else "rises"
        return {
            "direction": direction,
            "amount": amount,
            "relative": relative,
            "reference": reference,
        }

    def judge(self, p: Mapping[str, Any], v: Verdict, value: float, s: Series) -> None:
        ref = s.reference
        if ref is None:  # no reference value: the mean of the first baseline windows
            n = int(p.get("baseline_windows", DEFAULT_BASELINE_WINDOWS))
            baseline = s.eligible[:n]
            if len(baseline) < n or v.window_start in baseline:
                v.detail["reason"] = f"learning the baseline ({len(baseline)} windows)"
                return
            ref = s.mean(baseline)
        op, threshold = change_threshold(p, ref)
        v.breach, v.healthy = threshold_verdict(op, threshold, value, s.hysteresis)
        v.detail.update(
            condition=change_text(p, op, threshold, ref), threshold=threshold, reference=ref
        )


class Band(Kind):
    name = "band"

    def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
        opts = _options(name, "band", value, ("k", "baseline_windows", "side"))
        windows = opts.get("baseline_windows", DEFAULT_BASELINE_WINDOWS)
        return {
            "k": number(name, "band.k", opts.get("k", 3.0), positive=True),
            "baseline_windows": integer(name, "band.baseline_windows", windows, 2),
            "side": _side(name, "band", opts),
        }

    def judge(self, p: Mapping[str, Any], v: Verdict, value: float, s: Series) -> None:
        baseline = s.eligible[: p["baseline_windows"]]
        if len(baseline) < p["baseline_windows"] or v.window_start in baseline:
            learnt = f"{len(baseline)} of {p['baseline_windows']} windows"
            v.detail["reason"] = f"learning the band ({learnt})"
            return
        from watchkeeper.stats.anomaly import band

        low, high = band([float(s.values[b] or 0.0) for b in baseline], p["k"])
        v.breach = _outside(p["side"], value, low, high)
        v.healthy = not v.breach
        v.detail.update(
            condition=f"outside band [{_fmt(low)}, {_fmt(high)}]",
            threshold=low if value < low else high,
            low=low,
            high=high,
        )


class Anomaly(Kind):
    name = "anomaly"

    def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
        opts = _options(name, "anomaly", value, ("k", "side", "min_history", "utc_offset"))
        return {
            "k": number(name, "anomaly.k", opts.get("k", 4.0), positive=True),
            "side": _side(name, "anomaly", opts),
            "min_history": integer(name, "anomaly.min_history", opts.get("min_history", 12), 2),
            "utc_offset": number(name, "anomaly.utc_offset", opts.get("utc_offset", 0.0)),
        }

    def judge(self, p: Mapping[str, Any], v: Verdict, value: float, s: Series) -> None:
        history = [b for b in s.eligible if b < v.window_start]
        if len(history) < p["min_history"]:
            v.detail["reason"] = f"learning ({len(history)} of {p['min_history']} windows)"
            return
        from watchkeeper.stats.anomaly import seasonal_anomaly

        r = seasonal_anomaly(
            [float(b) for b in history],
            [float(s.values[b] or 0.0) for b in history],
            float(v.window_start),
            value,
            k=p["k"],
            utc_offset=p["utc_offset"],
        )
        v.breach = bool(r.is_anomaly) and _outside(p["side"], value, r.low, r.high)
        v.healthy = not v.breach
        expected = f"expected {_fmt(r.expected)}"
        v.detail.update(
            condition=f"anomaly: outside [{_fmt(r.low)}, {_fmt(r.high)}], {expected}",
            threshold=r.low if value < r.low else r.high,
            low=r.low,
            high=r.high,
            expected=r.expected,
            score=r.score,
            season=r.season,
            n_history=r.n_history,
        )


class Detector(Kind):
    """A detector of :data:`watchkeeper.stats.detectors.DETECTORS` on the stream."""

    name, sequential = "detector", True

    def parse(self, name: str, value: object, metric: str) -> dict[str, Any]:
        if not isinstance(value, Mapping) or "type" not in value:
            raise fail(
                name, "detector", f"expected {{type: {'|'.join(DETECTORS)}, ...}}, got {value!r}"
            )
        opts = dict(value)
        dtype = opts.pop("type")
        if not isinstance(dtype, str) or dtype not in DETECTORS:
            raise fail(name, "detector.type", f"use one of {', '.join(DETECTORS)}, got {dtype!r}")
        try:  # built once: unknown or bad arguments are named now
            DETECTORS[dtype].build(opts, binary=metric == "error")
        except (TypeError, ValueError) as exc:
            raise fail(name, "detector", str(exc)) from None
        return {"type": dtype, "options": opts}


# the registry: the key of a monitor's spec → its kind
KINDS: dict[str, Kind] = {k.name: k for k in (Condition(), Change(), Band(), Anomaly(), Detector())}
