"""A model's promotion policy: when a challenger has earned the champion's place.

``min_labelled`` shadow predictions with their labels are needed before a verdict; the
``metric`` is compared on those same requests by a paired test (accuracy: McNemar's test;
f1, roc_auc, mae, rmse: the paired bootstrap, ``stats/paired.py``) at level ``alpha``. Guards
a better challenger must also pass: its latency p95 at most ``max_latency_ratio`` times the
champion's on the same requests (or at most ``latency_slack_ms`` above it: a ratio of
sub-millisecond timings is noise), its error rate at most the champion's plus
``max_error_rate_increase``. ``mode`` ``auto`` promotes a challenger that passes; ``manual``
raises a "ready to promote" alert and leaves the promotion to an admin.

>>> Policy.from_dict({"metric": "f1", "mode": "auto"}).min_labelled
200
>>> Policy.from_dict({"alpha": 2})
Traceback (most recent call last):
...
watchkeeper.errors.InputError: alpha 2: a level between 0 and 1 (exclusive), e.g. 0.05
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.settings import Settings
from watchkeeper.stats.paired import PAIRED_METRICS

MODES = ("auto", "manual")


@dataclass(frozen=True)
class Policy:
    """See the module docstring."""

    min_labelled: int = 200
    metric: str = "accuracy"
    alpha: float = 0.05
    max_latency_ratio: float = 2.0
    latency_slack_ms: float = 1.0
    max_error_rate_increase: float = 0.01
    mode: str = "manual"

    def __post_init__(self) -> None:
        if isinstance(self.min_labelled, bool) or not isinstance(self.min_labelled, int):
            raise InputError(f"min_labelled {self.min_labelled!r}: a whole number, e.g. 200")
        if self.min_labelled < 10:
            raise InputError(f"min_labelled {self.min_labelled}: at least 10")
        if not isinstance(self.metric, str) or self.metric not in PAIRED_METRICS:
            raise InputError(
                f"metric {self.metric!r}: use one of {', '.join(sorted(PAIRED_METRICS))}"
            )
        _number("alpha", self.alpha, "a level between 0 and 1 (exclusive), e.g. 0.05")
        if not 0 < self.alpha < 1:
            raise InputError(
                f"alpha {self.alpha!r}: a level between 0 and 1 (exclusive), e.g. 0.05"
            )
        _number("max_latency_ratio", self.max_latency_ratio, "a ratio above 0, e.g. 2")
        if not self.max_latency_ratio > 0:
            raise InputError(
                f"max_latency_ratio {self.max_latency_ratio!r}: a ratio above 0, e.g. 2"
            )
        _number("latency_slack_ms", self.latency_slack_ms, "milliseconds, 0 or more")
        if not self.latency_slack_ms >= 0:
            raise InputError(f"latency_slack_ms {self.latency_slack_ms!r}: milliseconds, 0 or more")
        _number("max_error_rate_increase", self.max_error_rate_increase, "between 0 and 1")
        if not 0 <= self.max_error_rate_increase <= 1:
            raise InputError(
                f"max_error_rate_increase {self.max_error_rate_increase!r}: between 0 and 1"
            )
        if self.mode not in MODES:
            raise InputError(f"mode {self.mode!r}: use one of {', '.join(MODES)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """A policy from its fields; unknown fields are refused by name, missing ones take
        their defaults."""
        if not isinstance(data, Mapping):
            raise InputError("promotion policy: expected an object of fields")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"promotion policy: unknown field(s) {', '.join(unknown)}; "
                f"the fields are {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(name: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} {value!r}: {what}")


def configured_policies(settings: Settings) -> dict[str, Policy]:
    """The policies of the settings file (``promotion_policies``: model → fields), checked:
    a bad one names the model and the field."""
    policies = {}
    for model, fields_ in settings.promotion_policies.items():
        try:
            policies[model] = Policy.from_dict(fields_)
        except InputError as exc:
            raise InputError(f"promotion_policies.{model}: {exc}") from None
    return policies
