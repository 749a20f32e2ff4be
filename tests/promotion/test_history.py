"""Each promotion step is in the model's history once, read from where it is recorded."""

from __future__ import annotations

from tests.promotion.test_verdict import traffic
from watchkeeper.promotion.policy import Policy
from watchkeeper.promotion.verdict import judge
from watchkeeper.store import promotion as states
from watchkeeper.store.history import history
from watchkeeper.store.state import Store


def test_shadow_verdict_promotion_rollback_and_retirement_each_once(store: Store) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    states.challenge(store, "churn", "v3", mode="canary", share=0.1, entity_key="customer")
    traffic(store, 400, 0.70, 0.85)
    verdict = judge(store, "churn", "v2", Policy(min_labelled=200, mode="auto"))
    assert verdict is not None
    states.rollback(store, "churn")
    states.retire(store, "churn", "v3")
    events = history(store, "churn")
    steps = [
        (e["kind"], e["version"]) for e in reversed(events) if e["kind"] != "version_registered"
    ]
    assert steps == [
        ("shadow_started", "v2"),
        ("canary_started", "v3"),
        ("verdict", "v2"),
        ("promoted", "v2"),
        ("rolled_back", "v1"),
        ("retired", "v3"),
    ]
    by_kind = {e["kind"]: e for e in events}
    assert by_kind["canary_started"]["summary"] == "version v3 started as a canary on 10%"
    assert by_kind["promoted"]["detail"]["verdict_id"] == verdict.id
    assert by_kind["promoted"]["summary"] == (
        f"version v2 promoted to champion, replacing v1 on verdict {verdict.id}"
    )
    assert by_kind["verdict"]["detail"]["decision"] == "promote"
    assert by_kind["verdict"]["detail"]["n"] == 400
    only = history(store, "churn", kinds=["verdict", "rolled_back"])
    assert [e["kind"] for e in only] == ["rolled_back", "verdict"]
