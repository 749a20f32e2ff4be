"""The verdict on a shadow challenger, on both backends: the champion's and the challenger's
predictions of the same labelled requests, paired by prediction id, tested, acted on."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, mean_absolute_error

from watchkeeper.promotion.policy import Policy
from watchkeeper.promotion.verdict import judge, judge_all
from watchkeeper.store import promotion as states
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store


def traffic(
    store: Store,
    n: int,
    champion_right: float,
    challenger_right: float,
    *,
    seed: int = 0,
    start: int = 0,
    labelled: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` requests the champion v1 answered (the prediction index) and the shadow v2
    answered too; the first ``labelled`` of them (all by default) have their label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < champion_right, y, 1 - y)
    b = np.where(rng.random(n) < challenger_right, y, 1 - y)
    ids = [f"r{start + i:05d}" for i in range(n)]
    now = time.time()
    with store.write() as conn:
        conn.execute(
            t.predictions.insert(),
            [
                {"model": "churn", "prediction_id": pid, "version": "v1", "event_time": now,
                 "bucket": 0, "segment": "", "prediction": str(a[i]), "score": None,
                 "batch_id": 1, "received_at": now}
                for i, pid in enumerate(ids)
            ],
        )  # fmt: skip
        conn.execute(
            t.actuals.insert(),
            [
                {"model": "churn", "prediction_id": pid, "label": str(y[i]),
                 "received_at": now, "status": "matched"}
                for i, pid in enumerate(ids[: labelled if labelled is not None else n])
            ],
        )  # fmt: skip
    states.add_shadow(
        store,
        "churn",
        [
            {"version": "v2", "prediction_id": pid, "prediction": f"{float(b[i])}",
             "score": None, "latency_ms": 2.0, "champion_latency_ms": 1.5, "error": None,
             "at": now}
            for i, pid in enumerate(ids)
        ],
    )  # fmt: skip
    return y, a, b


@pytest.fixture
def shadow(store: Store) -> Store:
    states.challenge(store, "churn", "v2", mode="shadow")
    return store


def test_a_better_challenger_is_promoted_on_mcnemars_evidence(shadow: Store) -> None:
    y, a, b = traffic(shadow, 400, 0.70, 0.85)
    policy = Policy(min_labelled=200, mode="auto")
    verdict = judge(shadow, "churn", "v2", policy)
    assert verdict is not None and verdict.decision == "promote"
    e = verdict.evidence
    # the oracle: McNemar's chi-square with continuity correction on the discordant pairs
    only_a, only_b = int(np.sum((a == y) & (b != y))), int(np.sum((a != y) & (b == y)))
    chi2 = (abs(only_a - only_b) - 1) ** 2 / (only_a + only_b)
    assert e["n"] == 400 and e["method"] == "mcnemar-chi2"
    assert e["p_value"] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-9)
    assert e["champion"] == pytest.approx(np.mean(a == y))
    assert e["challenger"] == pytest.approx(np.mean(b == y))
    low, high = e["intervals"]["challenger"]
    assert low < e["challenger"] < high
    assert e["guards"]["latency_p95"]["passed"] and e["guards"]["error_rate"]["passed"]
    assert shadow.model("churn").champion == "v2"
    promoted = states.changes(shadow, "churn")[-1]
    assert (promoted["action"], promoted["previous"]) == ("promoted", "v1")
    assert promoted["detail"] == {"verdict_id": verdict.id, "by": "policy"}


def test_manual_policy_waits_for_an_admin(shadow: Store) -> None:
    traffic(shadow, 400, 0.70, 0.85)
    verdict = judge(shadow, "churn", "v2", Policy(min_labelled=200, mode="manual"))
    assert verdict is not None and verdict.decision == "ready"
    assert shadow.model("churn").champion == "v1"


def test_a_worse_challenger_is_retired_with_its_evidence(shadow: Store) -> None:
    traffic(shadow, 400, 0.85, 0.65)
    verdict = judge(shadow, "churn", "v2", Policy(min_labelled=200, mode="auto"))
    assert verdict is not None and verdict.decision == "retire"
    assert verdict.evidence["difference"] < 0 and verdict.evidence["p_value"] < 0.05
    assert {s["version"]: s["state"] for s in states.states(shadow, "churn")}["v2"] == "retired"
    assert states.changes(shadow, "churn")[-1]["detail"]["verdict_id"] == verdict.id


def test_no_verdict_before_enough_labels_and_one_per_step_of_them(shadow: Store) -> None:
    policy = Policy(min_labelled=200, mode="auto")
    traffic(shadow, 300, 0.8, 0.8, labelled=150)  # 300 shadowed, 150 labelled
    assert judge(shadow, "churn", "v2", policy) is None
    traffic(shadow, 100, 0.8, 0.8, seed=1, start=300)  # 250 labelled
    first = judge(shadow, "churn", "v2", policy)
    assert first is not None and first.decision == "collecting"
    assert first.evidence["n"] == 250 and first.evidence["shadowed"] == 400
    assert judge(shadow, "churn", "v2", policy) is None  # nothing new: no second verdict
    traffic(shadow, 200, 0.8, 0.8, seed=2, start=400)
    second = judge(shadow, "churn", "v2", policy)
    assert second is not None and second.evidence["n"] == 450
    assert [v["id"] for v in states.verdicts(shadow, "churn")] == [second.id, first.id]


def test_a_slow_challenger_fails_the_latency_guard(shadow: Store) -> None:
    traffic(shadow, 400, 0.70, 0.85)
    with shadow.write() as conn:
        conn.execute(t.shadow_predictions.update().values(latency_ms=10.0))
    verdict = judge(shadow, "churn", "v2", Policy(min_labelled=200, max_latency_ratio=3))
    assert verdict is not None and verdict.decision == "retire"
    guard = verdict.evidence["guards"]["latency_p95"]
    assert (guard["challenger_ms"], guard["champion_ms"], guard["passed"]) == (10.0, 1.5, False)


@pytest.mark.parametrize(("metric", "oracle"), [("f1", f1_score), ("mae", mean_absolute_error)])
def test_f1_and_mae_use_the_paired_bootstrap(shadow: Store, metric: str, oracle: Any) -> None:
    y, a, b = traffic(shadow, 300, 0.75, 0.9)
    verdict = judge(shadow, "churn", "v2", Policy(min_labelled=100, metric=metric))
    assert verdict is not None and verdict.evidence["method"] == "paired-bootstrap"
    assert verdict.evidence["champion"] == pytest.approx(oracle(y, a))
    assert verdict.evidence["challenger"] == pytest.approx(oracle(y, b))


def test_the_pass_judges_only_models_with_a_policy(shadow: Store) -> None:
    traffic(shadow, 400, 0.70, 0.85)
    judge_all(shadow)
    assert states.verdicts(shadow, "churn") == []
    states.put_policy(shadow, "churn", Policy(min_labelled=200, mode="auto").to_dict())
    judge_all(shadow)
    assert [v["decision"] for v in states.verdicts(shadow, "churn")] == ["promote"]
