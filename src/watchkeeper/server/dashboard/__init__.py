"""The web dashboard: server-rendered pages at ``/`` and under ``/ui/`` (see docs/dashboard.md).

``router`` (the pages, module-level endpoints; those of ``versions_routes``,
``audit_routes`` and ``card_view`` included in it) is included by ``create_app``;
``is_dashboard_path`` tells the API's token middleware which paths authenticate with the
dashboard's session cookie instead of a bearer token.
"""

from __future__ import annotations

from watchkeeper.server.dashboard.audit_routes import router as _audit
from watchkeeper.server.dashboard.card_view import router as _card
from watchkeeper.server.dashboard.routes import router
from watchkeeper.server.dashboard.session import is_dashboard_path
from watchkeeper.server.dashboard.versions_routes import router as _versions

router.include_router(_versions)  # the versions page and its promotion forms
router.include_router(_audit)  # the audit trail's page and its export
router.include_router(_card)  # the model card's page

__all__ = ["is_dashboard_path", "router"]
