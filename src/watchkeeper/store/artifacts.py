"""The artifact rows of model versions (``wk_artifacts``): one per version, replaced when a
new artifact is attached (the serving cache sees the new sha256 and reloads)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store import audit
from watchkeeper.store import tables as t

if TYPE_CHECKING:
    from watchkeeper.store.state import Store


def put_artifact(store: Store, model: str, version: str, row: dict[str, Any]) -> dict[str, Any]:
    """Record (or replace) the version's artifact; returns the stored row."""
    store.version(model, version)  # NotFoundError naming the model or version
    values = {**row, "model": model, "version": version, "attached_at": time.time()}
    a = t.artifacts.c

    def body(conn: sa.Connection) -> None:
        where = (a.model == model) & (a.version == version)
        old = conn.execute(sa.select(t.artifacts).where(where)).mappings().first()
        conn.execute(t.artifacts.delete().where(where))
        conn.execute(t.artifacts.insert().values(**values))
        audit.record(
            conn,
            "artifact_replaced" if old else "artifact_attached",
            f"{model}/{version}",
            model=model,
            before=_summary(old) if old else None,
            after=_summary(values),
        )

    store.write(body)
    store.changed()
    return values


def _summary(row: Any) -> dict[str, Any]:
    """What the audit trail keeps of an artifact row."""
    return {k: row[k] for k in ("format", "sha256", "size", "uri", "features", "trusted")}


def get_artifact(store: Store, model: str, version: str) -> dict[str, Any] | None:
    """The version's artifact row, or None when it has none."""
    a = t.artifacts.c
    with store.engine.connect() as conn:
        row = (
            conn.execute(sa.select(t.artifacts).where((a.model == model) & (a.version == version)))
            .mappings()
            .first()
        )
    return dict(row) if row else None
