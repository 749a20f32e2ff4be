"""The versions page (``/ui/models/{model}/versions``) and its promotion forms: promote or
retire a challenger, roll the champion back. A form posts with the page's CSRF token and
needs the admin scope (a viewer's forged post is a 403 page); the action is that of the API
(``store/promotion.py``), recorded in the model's history as ``by: dashboard``, and the
browser is sent back to the page with a notice."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from watchkeeper.server.dashboard import versions_view
from watchkeeper.server.dashboard.render import page
from watchkeeper.server.dashboard.routes import _act, _render, store_of
from watchkeeper.server.dashboard.session import Viewer

router = APIRouter(include_in_schema=False)


def _page_path(model: str) -> str:
    return f"/ui/models/{quote(model, safe='')}/versions"


@router.get("/ui/models/{model}/versions")
async def versions(request: Request, model: str, done: str | None = None) -> Response:
    store = store_of(request)
    configured = getattr(request.app.state, "policies", {})

    def build(who: Viewer) -> Response:
        info = store.model(model)
        data = versions_view.versions_page(store, info, configured)
        context = {
            "viewer": who,
            "nav": "models",
            "info": info,
            "flash": versions_view.flash(store, model, done),
            "here": _page_path(model),
            **data,
        }
        return page("versions.html.j2", context)

    return await _render(request, build)


async def _change(request: Request, model: str, action: str, version: str, done: str) -> Response:
    def run(who: Viewer, _form: dict[str, str]) -> Any:
        detail = {"by": "dashboard", "user": who.name}
        result = versions_view.act(store_of(request), model, action, version, detail)
        router_ = getattr(request.app.state, "router", None)
        if router_ is not None:  # this process's canary routing reads the states again
            router_.forget(model)
        return result

    needs = "rolling back" if action == "rollback" else f"{action.rstrip('e')}ing a version"
    return await _act(request, run, done, back=_page_path(model), needs=needs)


@router.post("/ui/models/{model}/versions/{version}/promote")
async def promote(request: Request, model: str, version: str) -> Response:
    return await _change(request, model, "promote", version, "promoted")


@router.post("/ui/models/{model}/versions/{version}/retire")
async def retire(request: Request, model: str, version: str) -> Response:
    return await _change(request, model, "retire", version, "retired")


@router.post("/ui/models/{model}/rollback")
async def rollback(request: Request, model: str) -> Response:
    return await _change(request, model, "rollback", "", "rolled_back")
