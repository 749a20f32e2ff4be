"""The verdict on a shadow challenger: the champion and the challenger compared on the same
labelled requests, by a paired test, and the decision the model's policy takes on it.

For each request both versions answered and whose label has arrived, the champion's
prediction (``wk_predictions``) and the challenger's (``wk_shadow_predictions``) are scored
against the label. Once ``min_labelled`` such pairs exist (and again each time as many more
have arrived) a verdict is recorded in ``wk_verdicts`` with its evidence — n, both metric
values with their 95 % intervals, the difference with its interval, the p-value, the guards —
and its decision:

* ``promote`` (policy ``auto``) or ``ready`` (``manual``): better at level ``alpha`` and the
  guards pass; ``auto`` promotes the challenger at once;
* ``retire``: significantly worse, or better but failing a guard; the challenger is retired;
* ``collecting``: no significant difference yet; the shadow goes on.

Looking again as labels arrive is a repeated test: each look is at level ``alpha``, so the
chance of promoting a challenger that is no better grows with the looks (at most a few times
``alpha`` over the handful of looks a challenger usually gets).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.promotion.policy import Policy
from watchkeeper.stats.paired import (
    PAIRED_METRICS,
    PairedTest,
    mcnemar,
    paired_bootstrap,
    resample_chunks,
)
from watchkeeper.store import promotion as states

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.promotion")
INTERVAL_RESAMPLES = 1000


@dataclass(frozen=True)
class Verdict:
    id: int
    decision: str
    evidence: dict[str, Any]


def policy_of(
    store: Store, model: str, configured: Mapping[str, Policy] | None = None
) -> tuple[Policy | None, str]:
    """The model's policy and where it comes from: ``api`` (set through the API, it wins),
    ``settings`` (the settings file's ``promotion_policies``) or ``none``."""
    stored = states.get_policy(store, model)
    if stored is not None:
        return Policy.from_dict(stored), "api"
    if configured and model in configured:
        return configured[model], "settings"
    return None, "none"


def judge(store: Store, model: str, challenger: str, policy: Policy) -> Verdict | None:
    """Record a verdict on ``challenger`` when enough new labelled pairs have arrived since
    the last one, and act on it (see the module docstring); None when none is due."""
    champion = store.model(model).champion
    if champion is None:
        return None
    pairs = states.shadow_pairs(store, model, champion, challenger)
    labelled = labelled_pairs(pairs)
    n = len(labelled)
    if n < policy.min_labelled or n // policy.min_labelled <= _last_step(
        store, model, champion, challenger, policy
    ):
        return None
    test = paired_test(policy.metric, labelled)
    guards = guard_checks(pairs, policy)
    significant = test.p_value < policy.alpha
    if significant and test.challenger_better and all(g["passed"] for g in guards.values()):
        decision = "promote" if policy.mode == "auto" else "ready"
    elif significant:
        decision = "retire"
    else:
        decision = "collecting"
    evidence = {
        **test.to_dict(),
        "intervals": metric_intervals(policy.metric, labelled),
        "alpha": policy.alpha,
        "min_labelled": policy.min_labelled,
        "shadowed": len(pairs),
        "guards": guards,
        "policy": policy.to_dict(),
    }
    verdict_id = states.add_verdict(store, model, champion, challenger, decision, evidence)
    detail = {"verdict_id": verdict_id, "by": "policy"}
    if decision == "promote":
        states.promote(store, model, challenger, detail=detail)
    elif decision == "retire":
        states.retire(store, model, challenger, detail=detail)
    log.info("verdict %d on %s %s: %s", verdict_id, model, challenger, decision)
    return Verdict(verdict_id, decision, evidence)


def judge_all(store: Store, configured: Mapping[str, Policy] | None = None) -> None:
    """One pass: a verdict on each shadow challenger of each model with a policy (the
    evaluator runs it after each of its passes, once the windows are evaluated)."""
    for info in store.models():
        policy, _ = policy_of(store, info.name, configured)
        if policy is None:
            continue
        for c in states.challengers(store, info.name):
            if c["mode"] != "shadow":
                continue
            try:
                judge(store, info.name, c["version"], policy)
            except Exception:
                log.exception("the verdict on %s %s failed", info.name, c["version"])


def labelled_pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs a verdict scores: labelled, the challenger did not fail, both predicted."""
    return [
        p
        for p in pairs
        if p["label"] is not None and p["error"] is None
        and p["champion_prediction"] is not None and p["challenger_prediction"] is not None
    ]  # fmt: skip


def _last_step(store: Store, model: str, champion: str, challenger: str, policy: Policy) -> int:
    """How many ``min_labelled`` steps of pairs the last verdict on this pair of versions
    had seen (0 when there is none)."""
    for v in states.verdicts(store, model, limit=50):
        if v["champion"] == champion and v["challenger"] == challenger:
            return int(v["evidence"]["n"]) // policy.min_labelled
    return 0


def as_values(items: list[Any]) -> np.ndarray[Any, Any]:
    """Numbers when every value reads as one (a label "1" equals a prediction "1.0"), else
    the text."""
    try:
        return np.asarray([float(x) for x in items], dtype=float)
    except (TypeError, ValueError):
        return np.asarray([str(x) for x in items], dtype=object)


def _columns(metric: str, rows: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    y = as_values([r["label"] for r in rows])
    if metric == "roc_auc":
        a = np.asarray([r["champion_score"] for r in rows], dtype=float)
        b = np.asarray([r["challenger_score"] for r in rows], dtype=float)
    else:
        a = as_values([r["champion_prediction"] for r in rows])
        b = as_values([r["challenger_prediction"] for r in rows])
    return y, a, b


def paired_test(metric: str, rows: list[dict[str, Any]]) -> PairedTest:
    y, a, b = _columns(metric, rows)
    if metric == "accuracy":
        return mcnemar(a == y, b == y)
    return paired_bootstrap(metric, y, a, b)


def metric_intervals(metric: str, rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each version's metric with its 95 % percentile-bootstrap interval."""
    y, a, b = _columns(metric, rows)
    fn = PAIRED_METRICS[metric][0]
    if metric in ("f1", "roc_auc"):
        positive = np.unique(y)[-1]
        y = y == positive
        if metric == "f1":
            a, b = a == positive, b == positive
    rng = np.random.default_rng(0)
    drawn: dict[str, list[np.ndarray[Any, Any]]] = {"champion": [], "challenger": []}
    for size in resample_chunks(INTERVAL_RESAMPLES, len(y)):  # the same draws, bounded memory
        index = rng.integers(0, len(y), size=(size, len(y)))
        for name, p in (("champion", a), ("challenger", b)):
            drawn[name].append(np.asarray(fn(y[index], p[index]), dtype=float))
    out = {}
    for name, parts in drawn.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        low, high = np.quantile(values, [0.025, 0.975])
        out[name] = [float(low), float(high)]
    return out


def guard_checks(pairs: list[dict[str, Any]], policy: Policy) -> dict[str, dict[str, Any]]:
    """Latency p95 and error rate of the challenger against the champion's on the same
    requests (a copy is made only of requests the champion answered: its error rate on them
    is 0)."""
    ours = [p["latency_ms"] for p in pairs if p["latency_ms"] is not None and not p["error"]]
    theirs = [p["champion_latency_ms"] for p in pairs if p["champion_latency_ms"] is not None]
    challenger_p95 = float(np.percentile(ours, 95)) if ours else None
    champion_p95 = float(np.percentile(theirs, 95)) if theirs else None
    latency_ok = (
        challenger_p95 is None
        or champion_p95 is None
        or challenger_p95 <= policy.max_latency_ratio * champion_p95
        or challenger_p95 <= champion_p95 + policy.latency_slack_ms
    )
    errors = sum(1 for p in pairs if p["error"])
    rate = errors / len(pairs) if pairs else 0.0
    return {
        "latency_p95": {
            "champion_ms": champion_p95,
            "challenger_ms": challenger_p95,
            "max_ratio": policy.max_latency_ratio,
            "slack_ms": policy.latency_slack_ms,
            "passed": latency_ok,
        },
        "error_rate": {
            "champion": 0.0,
            "challenger": rate,
            "max_increase": policy.max_error_rate_increase,
            "passed": rate <= policy.max_error_rate_increase,
        },
    }
