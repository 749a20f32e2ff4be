"""Shadow scoring: each request the champion answered is scored again by the model's shadow
challengers, off the response path.

:meth:`ShadowQueue.offer` is all the request path does: it puts the request in a bounded
queue without waiting, and when the queue is full the copy is dropped and counted
(``dropped``, per model, in the model's status and as ``watchkeeper_shadow_dropped_total``),
so a slow or saturated challenger never slows the champion. A worker thread takes the copies
of the last ``LINGER_SECONDS`` together, scores them with each shadow challenger of the model
and stores the answers under the champion's prediction ids (``wk_shadow_predictions``) in one
write per model and version (a commit per copy would compete with the champion), where the
verdict pairs them with the champion's predictions once the labels arrive. A challenger that
fails on a copy has the error stored with it (the error-rate guard counts it).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from watchkeeper.store import promotion as states

if TYPE_CHECKING:
    from watchkeeper.serving.registry import ScoredRequest, ServedModels
    from watchkeeper.store.state import Store

log = logging.getLogger("watchkeeper.promotion")
CHALLENGERS_SECONDS = 1.0  # how long the worker trusts its list of a model's challengers
LINGER_SECONDS = 0.1  # the worker gathers the copies of this long: one write for their answers
BATCH = 500  # copies scored at most between two writes

# (model, version, the request's feature columns) -> (predictions, positive-class scores,
# the model's milliseconds or None: then the call is timed)
Scored = tuple[Sequence[Any], Sequence[float] | None, float | None]
Scorer = Callable[[str, str, dict[str, list[Any]]], Scored]


@dataclass(frozen=True)
class ShadowCopy:
    """One answered request, as the champion saw it."""

    model: str
    champion: str
    columns: dict[str, list[Any]]
    prediction_ids: list[str]
    champion_latency_ms: float | None = None


class ShadowQueue:
    """A bounded queue of copies and the thread that scores them (module docstring)."""

    def __init__(self, store: Store, scorer: Scorer, *, size: int = 1000) -> None:
        self.store, self.scorer, self.size = store, scorer, size
        self._queue: queue.Queue[ShadowCopy | None] = queue.Queue(maxsize=size)
        self._dropped: Counter[str] = Counter()
        self._scored: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._challengers: dict[str, tuple[float, list[str]]] = {}
        self._thread: threading.Thread | None = None

    def offer(self, copy: ShadowCopy) -> bool:
        """Queue a copy without waiting; False (and counted) when the queue is full. A model
        with no shadow challenger in the worker's list (under ``CHALLENGERS_SECONDS`` old) has
        nothing to score: its copy is not queued, and the worker not woken (on a busy machine
        waking it cost a request more than the model's call)."""
        cached = self._challengers.get(copy.model)
        if (
            cached is not None
            and not cached[1]
            and time.monotonic() - cached[0] <= CHALLENGERS_SECONDS
        ):
            return True
        try:
            self._queue.put_nowait(copy)
            return True
        except queue.Full:
            with self._count_lock:
                self._dropped[copy.model] += 1
            return False

    def dropped(self, model: str | None = None) -> int:
        """Copies dropped because the queue was full (of ``model``, or all)."""
        with self._count_lock:
            return self._dropped[model] if model else sum(self._dropped.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """Per model: copies dropped, requests scored by a challenger."""
        with self._count_lock:
            models = set(self._dropped) | set(self._scored)
            return {m: {"dropped": self._dropped[m], "scored": self._scored[m]} for m in models}

    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wk-shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        while True:  # make room for the sentinel: what is queued is dropped on shutdown
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
        self._thread.join(timeout=10)
        self._thread = None

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued copy has been scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + LINGER_SECONDS
            while batch[-1] is not None and len(batch) < BATCH:
                try:  # the copies of the next moments join: their answers share one write
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            copies = [c for c in batch if c is not None]
            try:
                self.score(*copies)
            except Exception:
                log.warning("shadow copies of %s failed", {c.model for c in copies}, exc_info=True)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(copies) < len(batch):
                return

    def score(self, *copies: ShadowCopy) -> None:
        """Score copies with each shadow challenger of their model and store the answers, one
        write per model; a request a canary (or a version asked for by name) answered is not
        the champion's and is skipped."""
        rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # an id once per version
        champions: dict[str, str | None] = {}
        for copy in copies:
            shadows = [v for v in self._shadows(copy.model) if v != copy.champion]
            if not shadows:
                continue
            if copy.model not in champions:
                champions[copy.model] = self.store.model(copy.model).champion
            if champions[copy.model] != copy.champion:
                continue
            for version in shadows:
                answers = rows.setdefault((copy.model, version), {})
                for row in self._answers(copy, version):
                    answers.setdefault(str(row["prediction_id"]), row)
            with self._count_lock:
                self._scored[copy.model] += 1
        for (model, _), answers in rows.items():
            states.add_shadow(self.store, model, list(answers.values()))

    def _answers(self, copy: ShadowCopy, version: str) -> list[dict[str, Any]]:
        """The challenger's answers to one copy, a row per prediction id."""
        start = time.perf_counter()
        error: str | None = None
        predictions: Sequence[Any] = [None] * len(copy.prediction_ids)
        scores: Sequence[float] | None = None
        took: float | None = None
        try:
            predictions, scores, took = self.scorer(copy.model, version, copy.columns)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
        latency = took if took is not None else (time.perf_counter() - start) * 1000
        now = time.time()
        return [
            {
                "version": version,
                "prediction_id": pid,
                "prediction": None if predictions[i] is None else str(predictions[i])[:400],
                "score": None if scores is None else float(scores[i]),
                "latency_ms": latency,
                "champion_latency_ms": copy.champion_latency_ms,
                "error": error,
                "at": now,
            }
            for i, pid in enumerate(copy.prediction_ids)
        ]

    def _shadows(self, model: str) -> list[str]:
        cached = self._challengers.get(model)
        now = time.monotonic()
        if cached is None or now - cached[0] > CHALLENGERS_SECONDS:
            versions = [
                c["version"] for c in states.challengers(self.store, model) if c["mode"] == "shadow"
            ]
            cached = (now, versions)
            self._challengers[model] = cached
        return cached[1]


def serving_scorer(served: ServedModels) -> Scorer:
    """A :data:`Scorer` over the served models: the version's predictions and, for two
    classes, the later class's score (the positive class, as the prediction index keeps)."""
    from watchkeeper.serving.predict import predict_rows

    def score(model: str, version: str, columns: dict[str, list[Any]]) -> Scored:
        scored, took = predict_rows(served, model, version, columns)
        positive = None
        if (
            scored.scores is not None
            and scored.scores.ndim == 2
            and scored.scores.shape[1] in (1, 2)
        ):
            positive = scored.scores[:, -1].tolist()
        return scored.predictions, positive, took

    return score


def copy_of(request: ScoredRequest) -> ShadowCopy:
    """The shadow copy of a request the served models answered."""
    return ShadowCopy(
        request.model,
        request.version,
        request.columns,
        request.prediction_ids,
        request.latency_ms,
    )
