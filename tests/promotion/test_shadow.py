"""The shadow queue: copies scored off the response path, stored under the champion's
prediction ids; when the queue is full a copy is dropped and counted, never waited for."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from watchkeeper.promotion.shadow import ShadowCopy, ShadowQueue
from watchkeeper.store import promotion as states
from watchkeeper.store import tables as t
from watchkeeper.store.state import Store


class GatedScorer:
    """Scores ``age > 30`` once the gate opens; fails for version ``v3``."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(
        self, model: str, version: str, columns: dict[str, list[Any]]
    ) -> tuple[Sequence[Any], Sequence[float] | None, float | None]:
        self.gate.wait(30)
        if version == "v3":
            raise RuntimeError("v3 cannot score")
        ages = columns["age"]
        return ["yes" if a > 30 else "no" for a in ages], [a / 100 for a in ages], None


def copy(i: int) -> ShadowCopy:
    return ShadowCopy("churn", "v1", {"age": [20.0 + i, 40.0]}, [f"a{i}", f"b{i}"], 1.25)


def test_a_full_queue_drops_and_counts_without_waiting(store: Store) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    states.challenge(store, "churn", "v3", mode="shadow")
    scorer = GatedScorer()
    shadow = ShadowQueue(store, scorer, size=5)
    shadow.start()
    try:
        started = time.perf_counter()
        accepted = [shadow.offer(copy(i)) for i in range(20)]
        elapsed = time.perf_counter() - started
        # the worker holds one copy (blocked on the gate), the queue five more
        assert accepted.count(True) in (5, 6)
        assert shadow.dropped("churn") == 20 - accepted.count(True) == shadow.dropped()
        assert elapsed < 0.5, f"offering 20 copies took {elapsed:.3f} s"
        scorer.gate.set()
        shadow.drain()
    finally:
        shadow.stop()
    scored = accepted.count(True)
    assert shadow.counts() == {"churn": {"dropped": 20 - scored, "scored": scored}}
    with store.engine.connect() as conn:
        rows = conn.execute(t.shadow_predictions.select()).mappings().all()
    assert len(rows) == scored * 2 * 2  # two rows a copy, two challengers
    first = {(r["version"], r["prediction_id"]): r for r in rows}
    assert (first["v2", "a0"]["prediction"], first["v2", "a0"]["score"]) == ("no", 0.2)
    assert first["v2", "b0"]["prediction"] == "yes"
    assert first["v2", "a0"]["champion_latency_ms"] == 1.25
    failed = first["v3", "a0"]
    assert failed["prediction"] is None and failed["error"] == "RuntimeError: v3 cannot score"


def test_only_the_champions_requests_go_to_the_shadows(store: Store) -> None:
    states.challenge(store, "churn", "v2", mode="shadow")
    states.challenge(store, "churn", "v3", mode="canary", share=0.5)
    scorer = GatedScorer()
    scorer.gate.set()
    shadow = ShadowQueue(store, scorer)
    shadow.score(copy(0))
    states.retire(store, "churn", "v2")
    shadow._challengers.clear()  # the worker's one-second cache of the challengers
    shadow.score(copy(1))
    states.challenge(store, "churn", "v2", mode="shadow")
    shadow._challengers.clear()
    canary = ShadowCopy("churn", "v3", {"age": [50.0]}, ["c0"], 1.0)  # a canary answered it
    shadow.score(canary)
    with store.engine.connect() as conn:
        stored = {(r.version, r.prediction_id) for r in conn.execute(t.shadow_predictions.select())}
    assert stored == {("v2", "a0"), ("v2", "b0")}


def test_copies_gathered_together_share_one_write_and_store_an_id_once(store: Store) -> None:
    """The worker scores the copies of a moment together (one write per model and version,
    not a commit per request); a copy repeating an id (a retried request) is stored once."""
    states.challenge(store, "churn", "v2", mode="shadow")
    scorer = GatedScorer()
    scorer.gate.set()
    writes: list[int] = []
    add_shadow = states.add_shadow

    def counted(store_: Store, model: str, rows: Sequence[Any]) -> int:
        writes.append(len(rows))
        return add_shadow(store_, model, rows)

    states.add_shadow = counted  # type: ignore[assignment]
    try:
        shadow = ShadowQueue(store, scorer)
        shadow.score(*[copy(i) for i in range(10)], copy(3))
    finally:
        states.add_shadow = add_shadow  # type: ignore[assignment]
    assert writes == [20]
    with store.engine.connect() as conn:
        stored = [r.prediction_id for r in conn.execute(t.shadow_predictions.select())]
    assert sorted(stored) == sorted(f"{p}{i}" for p in "ab" for i in range(10))
    assert shadow.counts() == {"churn": {"dropped": 0, "scored": 11}}


def test_a_model_without_shadow_challengers_queues_no_copy(store: Store) -> None:
    """While the worker's list of the model's challengers (under a second old) has no shadow,
    a copy is not queued: the worker would skip it, and waking it costs the request."""
    shadow = ShadowQueue(store, GatedScorer())
    assert shadow.offer(copy(0)) and shadow.pending() == 1  # the list is not read yet
    assert shadow._shadows("churn") == []  # the worker reads it: none
    assert shadow.offer(copy(1)) and shadow.pending() == 1
    states.challenge(store, "churn", "v2", mode="shadow")
    shadow._challengers["churn"] = (time.monotonic() - 2, [])  # a list past its second
    assert shadow.offer(copy(2)) and shadow.pending() == 2
    assert shadow._shadows("churn") == ["v2"]
    assert shadow.offer(copy(3)) and shadow.pending() == 3
