"""Models of the audit trail's routes (``server/audit_api.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from watchkeeper.server.schemas import Out


class AuditEntry(Out):
    id: int
    at: float = Field(description="when the change was made (Unix seconds)")
    actor: str = Field(description='the token\'s name, "local", "cli:<user>" or "system"')
    kind: str = Field(description="what changed: model_registered, promoted, token_revoked, ...")
    model: str | None = Field(description="the model it concerns, if any")
    target: str = Field(description="what changed: model/version, monitor:name, token:id, ...")
    before: Any = Field(description="the state before (JSON), none for a creation")
    after: Any = Field(description="the state after (JSON), none for a deletion")


class AuditList(Out):
    entries: list[AuditEntry] = Field(description="newest first")
