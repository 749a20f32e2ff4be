"""Canary routing: which version answers a request.

The champion answers, except for the share of requests each canary challenger takes. With an
entity key (the canary's ``entity_key`` names an input, e.g. ``customer_id``), the choice is
a hash of the model and that input's value, so an entity stays on one version for as long as
the shares do not change; without one, each request draws at random.

>>> bucket("churn", "customer-42") == bucket("churn", "customer-42")
True
>>> 0 <= bucket("churn", "customer-42") < 1
True
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from watchkeeper.store import promotion as states

if TYPE_CHECKING:
    from watchkeeper.store.state import Store

CANARIES_SECONDS = 1.0  # how long the router trusts its list of a model's canaries


def bucket(model: str, entity: str) -> float:
    """A stable number in [0, 1) for the entity (the same in every process)."""
    digest = hashlib.sha256(f"{model}\x00{entity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Router:
    """Picks the answering version of each request (module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._canaries: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._random = random.Random()

    def forget(self, model: str) -> None:
        """Read the model's canaries again on the next request (its states changed)."""
        with self._lock:
            self._canaries.pop(model, None)

    def canaries(self, model: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            cached = self._canaries.get(model)
        if cached is None or now - cached[0] > CANARIES_SECONDS:
            found = [c for c in states.challengers(self.store, model) if c["mode"] == "canary"]
            cached = (now, found)
            with self._lock:
                self._canaries[model] = cached
        return cached[1]

    def choose(self, model: str, champion: str, columns: dict[str, list[Any]]) -> str:
        """The version answering a request whose inputs are ``columns``: a canary for its
        share, else the champion. A request of several rows goes to one version, by its
        first row's entity."""
        canaries = self.canaries(model)
        if not canaries:
            return champion
        key = canaries[0]["entity_key"]
        values = columns.get(key) if key else None
        if values:
            u = bucket(model, str(values[0]))
        else:
            with self._lock:
                u = self._random.random()
        edge = 0.0
        for c in canaries:
            edge += float(c["share"] or 0)
            if u < edge:
                return str(c["version"])
        return champion
