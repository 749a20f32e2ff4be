"""Champion and shadow challenger side by side, on the requests both answered, now.

What the dashboard's versions page shows of each shadow challenger: the requests both versions
answered and how many are labelled; on those paired labelled requests, the policy's metric —
and accuracy and F1 (classification) or MAE (regression) — of each version with its 95 %
interval and the paired difference; how often the two predictions agree; both latencies (p50,
p95) and error rates; the guards. The paired tests, the intervals and the guards are those of
the verdict (:mod:`watchkeeper.promotion.verdict`) on the same pairs, so on the pairs a
verdict saw these figures are that verdict's evidence.

A canary answers its own share of the requests: no request is answered by both versions, and
it has no paired comparison.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.errors import InputError
from watchkeeper.promotion.policy import Policy
from watchkeeper.promotion.verdict import (
    as_values,
    guard_checks,
    labelled_pairs,
    metric_intervals,
    paired_test,
)
from watchkeeper.store import promotion as states

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

# the metrics shown beside the policy's, by task
TASK_METRICS = {"classification": ("accuracy", "f1"), "regression": ("mae",)}


def metric(name: str, labelled: list[dict[str, Any]]) -> dict[str, Any]:
    """One metric on the labelled pairs: the verdict's paired test and intervals, or the
    ``problem`` when it cannot be computed (F1 of labels that are not two classes)."""
    if not labelled:
        return {"metric": name, "problem": "no labelled pair yet"}
    try:
        test = paired_test(name, labelled)
        intervals = metric_intervals(name, labelled)
    except (InputError, ValueError, TypeError) as exc:
        return {"metric": name, "problem": str(exc)}
    return {**test.to_dict(), "intervals": intervals}


def agreement(pairs: list[dict[str, Any]]) -> float | None:
    """The share of the requests both versions predicted on which they predicted the same
    (``"1"`` and ``"1.0"`` are the same number)."""
    both = [
        p for p in pairs
        if p["champion_prediction"] is not None and p["challenger_prediction"] is not None
    ]  # fmt: skip
    if not both:
        return None
    a = as_values([p["champion_prediction"] for p in both])
    b = as_values([p["challenger_prediction"] for p in both])
    if a.dtype != b.dtype:  # one side reads as numbers, the other not: compare the text
        a, b = a.astype(str), b.astype(str)
    return float(np.mean(a == b))


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def compare(
    store: Store, model: str, champion: str, challenger: str, policy: Policy, task: str
) -> dict[str, Any]:
    """The side-by-side comparison of ``challenger`` with ``champion`` (see the module
    docstring); ``task`` is ``classification`` or ``regression``."""
    pairs = states.shadow_pairs(store, model, champion, challenger)
    labelled = labelled_pairs(pairs)
    names = [policy.metric, *(m for m in TASK_METRICS[task] if m != policy.metric)]
    guards = guard_checks(pairs, policy)
    ok = [p["latency_ms"] for p in pairs if p["latency_ms"] is not None and not p["error"]]
    theirs = [p["champion_latency_ms"] for p in pairs if p["champion_latency_ms"] is not None]
    return {
        "shadowed": len(pairs),
        "labelled": len(labelled),
        "metrics": [metric(m, labelled) for m in names],
        "agreement": agreement(pairs),
        "latency": {"champion": _percentiles(theirs), "challenger": _percentiles(ok)},
        "error_rate": {
            "champion": guards["error_rate"]["champion"],
            "challenger": guards["error_rate"]["challenger"],
        },
        "guards": guards,
    }
