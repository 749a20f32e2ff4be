"""docs/service.md keeps up with the service: every setting and every route is documented."""

from __future__ import annotations

from pathlib import Path

from watchkeeper.server.app import create_app
from watchkeeper.settings import Settings, load_settings

DOC = (Path(__file__).parents[1] / "docs" / "service.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`{name}`" in DOC, f"setting {name} is not in docs/service.md"


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(load_settings(environ={}, data_dir=str(tmp_path)))
    paths = {
        r.path
        for r in app.routes
        if r.path not in ("/docs", "/openapi.json", "/redoc") and not r.path.startswith("/docs/")
    }
    for path in paths:
        assert f"`{path}`" in DOC or f" {path}`" in DOC, f"route {path} is not in docs/service.md"
