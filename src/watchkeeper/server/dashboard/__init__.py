"""The web dashboard: server-rendered pages at ``/`` and under ``/ui/`` (see docs/dashboard.md).

``router`` (the pages, module-level endpoints) is included by ``create_app``;
``is_dashboard_path`` tells the API's token middleware which paths authenticate with the
dashboard's session cookie instead of a bearer token.
"""

from __future__ import annotations

from watchkeeper.server.dashboard.routes import router
from watchkeeper.server.dashboard.session import is_dashboard_path

__all__ = ["is_dashboard_path", "router"]
