"""The ingest service: the one object the server, the CLI and the demo talk to.

A thin facade over the modules of each concern: ``registry`` (registration, status),
``accept`` (prediction batches into the durable log), ``labels`` (actuals and the label
join), ``cloudevents`` (request/response events of serving frameworks) and ``index`` (the
prediction index). The background processor (``processor``) uses ``index`` and ``labels``
directly, never this class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from watchkeeper.ingest import registry
from watchkeeper.ingest.accept import IngestResult, Overloaded, accept
from watchkeeper.ingest.cache import ModelCache
from watchkeeper.ingest.cloudevents import accept_cloudevent
from watchkeeper.ingest.labels import accept_actuals, index_pending
from watchkeeper.ingest.pushed import accept_profile, reference_profile
from watchkeeper.ingest.writer import EventWriter
from watchkeeper.schema import Schema
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store

__all__ = ["IngestResult", "IngestService", "Overloaded"]


class IngestService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.cache = ModelCache(store)  # the model, its versions and the backlog, in memory
        # the group commit of the prediction batches (set and started by the server); None:
        # each batch commits alone
        self.writer: EventWriter | None = None

    def register(
        self,
        model: str,
        reference: object,
        *,
        version: str = "v1",
        target: str | None = None,
        prediction: str | None = None,
        scores: str | Sequence[str] | None = None,
        segments: str | Sequence[str] | None = None,
        features: str | Sequence[str] | None = None,
        ignore: str | Sequence[str] | None = None,
        schema: Schema | None = None,
        window_seconds: int | None = None,
        label_horizon_days: float | None = None,
        retention_days: float | None = None,
        champion: bool = True,
        drift_reference: str | None = None,
        constraints: object = None,
        on_violation: str | None = None,
        description: str | None = None,
        owner: str | None = None,
        intended_use: str | None = None,
    ) -> dict[str, Any]:
        """Register a model (if new) and a version with its training reference."""
        return registry.register(
            self.store,
            self.settings,
            model,
            reference,
            version=version,
            target=target,
            prediction=prediction,
            scores=scores,
            segments=segments,
            features=features,
            ignore=ignore,
            schema=schema,
            window_seconds=window_seconds,
            label_horizon_days=label_horizon_days,
            retention_days=retention_days,
            champion=champion,
            drift_reference=drift_reference,
            constraints=constraints,
            on_violation=on_violation,
            description=description,
            owner=owner,
            intended_use=intended_use,
        )

    def schema(self, model: str, version: str) -> Schema:
        schema: Schema = self.store.reference(model, version)[0]
        return schema

    def ingest(self, model: str, body: bytes, content_type: str | None) -> IngestResult:
        """Accept a batch of prediction events durably (see ``accept``)."""
        return accept(
            self.store,
            self.settings,
            model,
            body,
            content_type,
            cache=self.cache,
            writer=self.writer,
        )

    def index_pending(self, model: str) -> int:
        """Index the model's logged batches the processor has not reached yet."""
        return index_pending(self.store, model)

    def actuals(self, model: str, body: bytes) -> dict[str, Any]:
        """Join ground-truth labels to their predictions (see ``labels``)."""
        return accept_actuals(self.store, model, body)

    def log_profile(
        self, model: str, blob: bytes, window: float, version: str | None = None
    ) -> dict[str, Any]:
        """Merge a window profile computed elsewhere (a Spark job) into the window that
        holds ``window`` (see ``pushed``)."""
        return accept_profile(self.store, model, blob, window, version)

    def reference_profile(self, model: str, version: str | None = None) -> bytes:
        """The serialised reference profile of ``version`` (the champion when None): the
        frozen spec a pushed profile is built on."""
        return reference_profile(self.store, model, version)

    def cloudevent(
        self, headers: Mapping[str, str], body: bytes, model: str | None, version: str | None
    ) -> dict[str, Any]:
        """Accept one CloudEvent (a request or a response half of a prediction)."""
        return accept_cloudevent(self.store, self.settings, headers, body, model, version)

    def status(self, model: str) -> dict[str, Any]:
        return registry.status(self.store, model)
