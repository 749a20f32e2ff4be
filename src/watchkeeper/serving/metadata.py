"""What a scoring request reads of the stored state, kept in memory between requests.

A request needs its model's champion and versions, the version's schema and the column its
positive-class score goes to, the version's model inputs and the log's backlog. Reading them
from the database for every request cost more than the model (milliseconds); here each is
read once and kept:

* until this process changes them: registering a version, a promotion, a rollback, a
  challenger's start or end and attaching an artifact raise ``Store.generation``
  (``Store.changed``), and an entry read under an older generation is read again, so the
  next request sees the change;
* at most ``SECONDS`` (another process, e.g. a replica or the CLI on the same database, may
  have changed them), the same bound the model registry and the router keep.

A version's schema and reference never change once it is added (``Store.reference`` keeps
them for good). Everything but the inputs is ingest's cache (``ingest.cache``), which the
``POST .../predictions`` path reads too.
"""

from __future__ import annotations

from watchkeeper.ingest.cache import SECONDS, ModelCache, VersionInfo
from watchkeeper.serving.artifacts import schema_features
from watchkeeper.store.artifacts import get_artifact

__all__ = ["SECONDS", "Metadata", "VersionInfo"]


class Metadata(ModelCache):
    """The cached reads of ingest (``ingest.cache``) and the version's model inputs."""

    def inputs(self, model: str, version: str) -> list[str]:
        """The model's inputs in order; without an artifact the schema's features, so that
        scoring fails where the request's rows are quarantined (``serving.predict``)."""

        def read() -> list[str]:
            row = get_artifact(self.store, model, version)
            if row is not None:
                return list(row["features"])
            return schema_features(self.version(model, version).schema)

        return self._cached(("inputs", model, version), read)
