"""The delivery loop looks for due rows less while idle, and never later than a row is due:
woken at once by an enqueue, at the due time of a retry. Counted: the loop's looks (claims),
against a real store and a real webhook receiver."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.alerts.outbox import Outbox, enqueue
from watchkeeper.alerts.queries import list_deliveries
from watchkeeper.store.state import Store

INTERVAL = 0.02  # the loop's shortest wait: the old loop looked every 20 ms


@pytest.fixture
def store(database_url: str, open_store: Callable[[str], Store]) -> Store:
    return open_store(database_url)


@pytest.fixture
def box(store: Store, webhook_receiver: Any) -> Iterator[Outbox]:
    notifiers = build_notifiers({"hook": {"type": "webhook", "url": webhook_receiver.url}})
    outbox = Outbox(store, notifiers, max_attempts=3, backoff=1.0, timeout=2.0)
    outbox.start(INTERVAL)
    yield outbox
    outbox.stop()


def _enqueue(store: Store, box: Outbox, alert_id: int) -> None:
    payload = {"id": alert_id, "monitor": "floor", "model": "churn", "metric": "accuracy"}
    payload["severity"] = "warning"
    with store.write() as conn:
        enqueue(conn, payload, "firing", ["hook"], box.notifiers, silenced=False, now=time.time())
    box.wake()  # as the engine does after enqueueing


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_an_idle_loop_looks_less_and_less_often(box: Outbox) -> None:
    time.sleep(1.5)  # looking every 20 ms: some 75 looks; doubling its wait: some 7
    assert 1 <= box.polls <= 12, box.polls


def test_a_woken_loop_sends_at_once_after_a_long_idle(
    store: Store, box: Outbox, webhook_receiver: Any
) -> None:
    time.sleep(1.5)  # the idle wait has grown past a second
    before = box.polls
    _enqueue(store, box, 1)
    webhook_receiver.wait_for(1, timeout=1.0)  # woken: well before the idle wait ends
    assert box.polls - before <= 2, box.polls - before


def test_a_retry_is_attempted_when_due_without_looking_meanwhile(
    store: Store, box: Outbox, webhook_receiver: Any
) -> None:
    webhook_receiver.fail_next(1, status=503)
    before = box.polls
    _enqueue(store, box, 2)
    webhook_receiver.wait_for(1, timeout=10.0)  # the retry, 1 s after the failure
    _wait(lambda: list_deliveries(store, alert_id=2)[0]["status"] == "sent")
    [row] = list_deliveries(store, alert_id=2)
    assert row["attempts"] == 2
    # the failing attempt, the waits doubling from 20 ms up to the retry's due time (some
    # 6), the retry and a look after it: not a look every 20 ms for a second (some 50)
    assert box.polls - before <= 12, box.polls - before
