"""The options of ``slices=`` and the result: :class:`FailingSlices` of :class:`Slice`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watchkeeper.errors import InputError
from watchkeeper.stats.intervals import MetricValue

__all__ = ["CONFIDENCE", "DEFAULTS", "LIMITS", "FailingSlices", "Slice", "slice_options"]

DEFAULTS: dict[str, Any] = {
    "min_rows": 30,
    "min_share": 0.01,
    "ranges": 5,
    "categories": 20,
    "pairs": True,
    "top": 20,
}
# the integer options' bounds: a cell's code fits in one byte
LIMITS = {"min_rows": (2, 10**9), "ranges": (2, 50), "categories": (1, 200), "top": (1, 10**6)}
CONFIDENCE = 0.95


def slice_options(value: object) -> dict[str, Any] | None:
    """The options of ``slices=``: True (the defaults), False (off), or a mapping overriding
    some of ``DEFAULTS``; anything else is an :class:`InputError` naming what is wrong."""
    if value is False or value is None:
        return None
    if value is True:
        return dict(DEFAULTS)
    if not isinstance(value, Mapping):
        raise InputError(f"slices must be True, False or a mapping of options, got {value!r}")
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown slices option(s) {unknown}: known are {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **value}
    for key, (low, high) in LIMITS.items():
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise InputError(
                f"slices option {key} must be an integer in [{low}, {high}], got {v!r}"
            )
    share = out["min_share"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 0.5:
        raise InputError(f"slices option min_share must be in [0, 0.5), got {share!r}")
    if not isinstance(out["pairs"], bool):
        raise InputError(f"slices option pairs must be True or False, got {out['pairs']!r}")
    return out


@dataclass
class Slice:
    """One failing slice: its cells' description, rows, the metric in it and in the rest
    (with intervals), the test's p-value (raw and Holm-adjusted) and its impact."""

    description: str
    columns: list[str]
    conditions: list[dict[str, Any]]
    n: int
    n_rest: int
    metric: str
    slice_value: MetricValue
    rest_value: MetricValue
    error_rate: MetricValue | None
    error_rate_rest: MetricValue | None
    p_value: float
    adjusted_p_value: float
    impact: float

    @property
    def gap(self) -> float:
        """How much worse the slice is than the rest, in the metric's units (positive)."""
        s, r = self.slice_value["value"], self.rest_value["value"]
        assert s is not None and r is not None
        return r - s if self.metric == "accuracy" else s - r

    def sentence(self) -> str:
        """ "accuracy is lowest in country=DE, income ≥ 80k: 0.61 vs 0.82, n = 1,204"."""
        s, r = self.slice_value["value"], self.rest_value["value"]
        return f"{self.description}: {self.metric} {s:.3g} vs {r:.3g} elsewhere, n = {self.n:,}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "columns": self.columns,
            "conditions": self.conditions,
            "n": self.n,
            "n_rest": self.n_rest,
            "metric": self.metric,
            "slice": dict(self.slice_value),
            "rest": dict(self.rest_value),
            "gap": self.gap,
            "error_rate": None if self.error_rate is None else dict(self.error_rate),
            "error_rate_rest": None if self.error_rate_rest is None else dict(self.error_rate_rest),
            "p_value": self.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "impact": self.impact,
        }


@dataclass
class FailingSlices:
    """``report.failing_slices``: the slices found (ranked by impact) and how they were
    sought; ``reason`` says why nothing could be sought (no labels, say)."""

    slices: list[Slice] = field(default_factory=list)
    metric: str | None = None
    test: str | None = None
    rows: int = 0
    tested: int = 0
    significant: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    alpha: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "test": self.test,
            "correction": "holm",
            "alpha": self.alpha,
            "rows": self.rows,
            "min_rows": self.min_size,
            "tested": self.tested,
            "significant": self.significant,
            "reported": len(self.slices),
            "options": self.options,
            "slices": [s.to_dict() for s in self.slices],
            "reason": self.reason,
        }

    @property
    def min_size(self) -> int:
        """The fewest labelled rows a tested cell (and the rest) holds."""
        if not self.options:
            return 0
        return max(
            int(self.options["min_rows"]), int(np.ceil(self.options["min_share"] * self.rows))
        )
