"""docs/service.md keeps up with the service: every setting and every route is documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from watchkeeper.server.app import create_app
from watchkeeper.settings import Settings, load_settings

DOC = (Path(__file__).parents[1] / "docs" / "service.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`{name}`" in DOC, f"setting {name} is not in docs/service.md"


def _paths(routes: list[Any]) -> Iterator[str]:
    """Every route's path, through included routers (one entry each in ``app.routes``)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _paths(route.original_router.routes)
        else:
            yield route.path


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(load_settings(environ={}, data_dir=str(tmp_path)))
    paths = {
        path
        for path in _paths(app.routes)
        if path not in ("/docs", "/openapi.json", "/redoc") and not path.startswith("/docs/")
    }
    assert "/v1/models/{model}/predictions" in paths and "/ui/alerts" in paths
    for path in paths:
        assert f"`{path}`" in DOC or f" {path}`" in DOC, f"route {path} is not in docs/service.md"
