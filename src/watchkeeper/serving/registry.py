"""The models in memory: one :class:`~watchkeeper.serving.loaders.Loaded` per (model,
version), loaded on first use and loaded again when the version's artifact changes.

Thread-safe: scoring runs in a thread pool, so two requests may ask for a version at once; a
lock per (model, version) lets one of them load it while the other waits, and versions of
other models are not held up. The artifact row is read again at most every
``CHECK_SECONDS``, so a new artifact attached through another process (a replica on the same
database) is picked up within that time; one attached through this process at once.

``ServedModels`` is also where routing will hang: :meth:`champion` names the version that
answers, and the ``after_score`` hooks receive each scored request (the model, the answering
version, the feature columns, the prediction ids), so a router can copy it to a challenger
off the response path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchkeeper.ingest.writer import EventWriter
from watchkeeper.serving.loaders import Loaded, ModelLoadError, load
from watchkeeper.serving.metadata import Metadata
from watchkeeper.settings import Settings
from watchkeeper.store.artifacts import get_artifact
from watchkeeper.store.state import NotFoundError, Store

CHECK_SECONDS = 1.0
Key = tuple[str, str]


@dataclass
class ScoredRequest:
    """What an ``after_score`` hook receives about one answered request."""

    model: str
    version: str
    columns: dict[str, Any]  # the request's feature values, a list per feature
    prediction_ids: list[str]
    predictions: list[Any]
    latency_ms: float | None = None  # the answering version's, for the request


@dataclass
class _Entry:
    sha256: str
    loaded: Loaded
    checked: float


class ServedModels:
    """The registry of loaded model versions (see the module docstring)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._entries: dict[Key, _Entry] = {}
        self._locks: dict[Key, threading.Lock] = {}
        self._guard = threading.Lock()
        self.after_score: list[Callable[[ScoredRequest], None]] = []
        # (model, champion, the request's columns) -> the answering version (a canary's share)
        self.route: Callable[[str, str, dict[str, Any]], str] | None = None
        self.meta = Metadata(store)  # the stored state a request reads, cached
        # the served events' group commit (set and started by the server unless
        # ``serving_log`` is "sync"); None: each request commits its own events
        self.events: EventWriter | None = None

    def champion(self, model: str) -> str:
        """The version that answers the model's requests."""
        return self.meta.champion(model)

    def answering(self, model: str, columns: dict[str, Any]) -> str:
        """The version that answers this request: the champion, or a canary for its share
        (``route``, set by the server: ``promotion/router.py``)."""
        champion = self.champion(model)
        return champion if self.route is None else self.route(model, champion, columns)

    def loaded_versions(self) -> list[Key]:
        """The (model, version) pairs in memory."""
        with self._guard:
            return sorted(self._entries)

    def get(self, model: str, version: str) -> Loaded:
        """The version's model in memory: loaded now when it is not, or when its artifact has
        changed. :class:`NotFoundError` without an artifact, :class:`ModelLoadError` (500)
        when it does not load."""
        key = (model, version)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now - entry.checked < CHECK_SECONDS:
            return entry.loaded
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry.checked < CHECK_SECONDS:
                return entry.loaded  # loaded or checked by the thread we waited for
            row = get_artifact(self.store, model, version)
            if row is None:
                self.store.version(model, version)  # NotFoundError naming the version
                raise NotFoundError(
                    f"model {model!r} version {version!r} has no artifact to serve: attach one "
                    f"with PUT /v1/models/{model}/versions/{version}/artifact"
                )
            if entry is None or entry.sha256 != row["sha256"]:
                entry = _Entry(row["sha256"], self._load(model, version, row), 0.0)
            entry.checked = time.monotonic()
            with self._guard:
                self._entries[key] = entry
            return entry.loaded

    def load_apart(self, model: str, version: str) -> Loaded:
        """The version's model loaded for a one-off use (the attribution shares computed when
        an artifact is attached), not kept: the served model is still loaded on first use."""
        row = get_artifact(self.store, model, version)
        if row is None:
            raise NotFoundError(f"model {model!r} version {version!r} has no artifact")
        return self._load(model, version, row)

    def forget(self, model: str, version: str) -> None:
        """Drop the version from memory (its artifact was replaced in this process)."""
        with self._guard:
            self._entries.pop((model, version), None)

    def _load(self, model: str, version: str, row: dict[str, Any]) -> Loaded:
        from watchkeeper.serving.artifacts import artifacts_dir

        path = artifacts_dir(self.settings) / row["path"] if row["path"] else None
        try:
            return load(
                row["format"],
                path=path,
                uri=row["uri"],
                features=list(row["features"]),
                trusted=list(row["trusted"]),
                tracking_uri=self.settings.mlflow_tracking_uri,
            )
        except Exception as exc:
            raise ModelLoadError(
                f"model {model!r} version {version!r} ({row['format']} artifact) failed to "
                f"load: {exc}"
            ) from exc
