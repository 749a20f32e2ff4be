"""The dashboard's routes: ``/`` (the models) and everything under ``/ui/``.

Each page handler checks the viewer (:mod:`.session`), builds its context in a worker thread
(the store is synchronous) and renders a template; a :class:`WatchkeeperError` becomes an
HTML error page with the error's status, so a bad query parameter is a 400 page naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.server.dashboard import alerts_view, performance_view, queries, views
from watchkeeper.server.dashboard.assets import serve_asset
from watchkeeper.server.dashboard.feature_view import feature_page
from watchkeeper.server.dashboard.filters import RANGE_LABELS
from watchkeeper.server.dashboard.render import page
from watchkeeper.server.dashboard.session import (
    COOKIE,
    LoginRequired,
    Viewer,
    clear_session,
    cookie_csrf,
    csrf_ok,
    login_redirect,
    remember_csrf,
    safe_next,
    set_session,
    tokens_required,
    viewer,
)
from watchkeeper.server.ratelimit import TooManyFailures, client_address
from watchkeeper.store.audit import acting_as
from watchkeeper.store.sessions import end_session, open_session
from watchkeeper.store.state import Store
from watchkeeper.store.tokens import check_token

QUARANTINE_PAGE = 50
FORM_LIMIT = 64 * 1024


def _error_page(exc: WatchkeeperError, who: Viewer | None) -> Response:
    status = exc.http_status
    title = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}.get(
        status, "Error"
    )
    context = {"viewer": who, "nav": "", "status": status, "title": title}
    return page(
        "error.html.j2", context | {"message": str(exc), "kind": type(exc).__name__}, status=status
    )


class Forbidden(WatchkeeperError):
    """The viewer's token lacks the scope of an action."""

    http_status = 403


async def _render(request: Request, build: Callable[[Viewer], Response]) -> Response:
    try:
        who = await viewer(request)
    except LoginRequired as exc:
        return login_redirect(exc.next_path)
    try:
        response = await run_in_threadpool(build, who)
    except WatchkeeperError as exc:
        response = _error_page(exc, who)
    if who.new_csrf:
        remember_csrf(response, request, who.csrf)
    return response


def _stale_form() -> Forbidden:
    return Forbidden(
        "this form's CSRF token is missing or wrong (a form of another site, or an old page): "
        "reload the page and try again"
    )


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body (one value per field)."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise InputError(f"form body over {FORM_LIMIT} bytes")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _params(request: Request) -> views.PageParams:
    q = request.query_params
    names = ("range", "start", "end", "version", "segment", "sort", "order", "window")
    return views.PageParams(**{n: q.get(n) or None for n in names})


# The pages are HTML, not part of the API's OpenAPI document.
router = APIRouter(include_in_schema=False)


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/")
async def models(request: Request) -> Response:
    store = store_of(request)

    def build(who: Viewer) -> Response:
        firing = alerts_view.firing_by_model(store)
        note = None if firing is not None else "Alerts are not available in this build."
        rows = views.overview(store, firing)
        return page(
            "overview.html.j2",
            {"viewer": who, "nav": "models", "models": rows, "alerts_note": note},
        )

    return await _render(request, build)


@router.get("/ui/models/{model}")
async def model_page(request: Request, model: str) -> Response:
    store, params = store_of(request), _params(request)

    def build(who: Viewer) -> Response:
        from watchkeeper.server.dashboard.card_view import failing_slices  # it imports this

        ctx = views.resolve(store, model, params)
        summaries = queries.summaries(store, ctx.scope)
        series = views.model_series(store, ctx, summaries)
        perf = series["performance"]
        marks = queries.promotion_marks(store, model)
        performance = performance_view.performance_charts(
            store, ctx, series["times"], perf, percent=perf == views.CLASSIFICATION, marks=marks
        )
        outputs = performance_view.prediction_drift(store, ctx, series["times"], marks)
        joint = performance_view.joint_drift(store, ctx, series["times"], marks)
        charts = views.model_charts(series, performance, [*joint, *outputs["charts"]], marks)
        table = views.features_table(store, ctx, list(summaries), params.sort, params.order)
        firing = alerts_view.firing_by_model(store)
        keep = params.query()
        columns = views.table_columns(table, keep)
        context = {
            "viewer": who,
            "nav": "models",
            "ctx": ctx,
            "params": keep,
            "sorted": bool(params.sort),
            "ranges": RANGE_LABELS,
            "charts": charts,
            "charts_on_page": True,
            "table": table,
            "columns": columns,
            "cards": views.cards(series, ctx, table),
            "outputs": outputs,
            "alerts_firing": None if firing is None else firing.get(model, 0),
            "slices": failing_slices(store, ctx),
        }
        return page("model.html.j2", context)

    return await _render(request, build)


@router.get("/ui/models/{model}/features/{feature:path}")
async def feature(request: Request, model: str, feature: str) -> Response:
    store, params = store_of(request), _params(request)

    def build(who: Viewer) -> Response:
        ctx = views.resolve(store, model, params)
        context = {
            "viewer": who,
            "nav": "models",
            "ctx": ctx,
            "params": params.query(),
            "ranges": RANGE_LABELS,
            "charts_on_page": True,
            "f": feature_page(store, ctx, feature, params.window),
        }
        return page("feature.html.j2", context)

    return await _render(request, build)


@router.get("/ui/models/{model}/quarantine")
async def quarantine(request: Request, model: str, offset: str = "0") -> Response:
    store = store_of(request)

    def build(who: Viewer) -> Response:
        if not offset.isdigit():
            raise InputError(f"query parameter offset: {offset!r} is not a whole number")
        info = store.model(model)
        start = int(offset)
        items = store.quarantine(model, limit=QUARANTINE_PAGE, offset=start)
        for item in items:
            item["event_text"] = json.dumps(
                item["event"], indent=1, ensure_ascii=False, default=str
            )
            item["reasons"] = [
                r if isinstance(r, dict) else {"field": "", "problem": str(r)}
                for r in item["reasons"]
            ]
        context = {
            "viewer": who,
            "nav": "models",
            "info": info,
            "items": items,
            "offset": start,
            "limit": QUARANTINE_PAGE,
            "total": queries.quarantine_count(store, model),
        }
        return page("quarantine.html.j2", context)

    return await _render(request, build)


@router.get("/ui/alerts")
async def alerts(request: Request, model: str | None = None, done: str | None = None) -> Response:
    store = store_of(request)

    def build(who: Viewer) -> Response:
        if model:
            store.model(model)
        data = alerts_view.alerts_page(store, model or None) if alerts_view.available() else None
        flash = {"silenced": "Silenced.", "ended": "The silence has ended."}.get(done or "")
        here = "/ui/alerts" + (f"?model={quote(model)}" if model else "")
        context = {
            "viewer": who,
            "nav": "alerts",
            "model": model,
            "data": data,
            "flash": flash,
            "durations": alerts_view.DURATIONS,
            "next": here,
        }
        return page("alerts.html.j2", context)

    return await _render(request, build)


async def _act(
    request: Request,
    action: Callable[[Viewer, dict[str, str]], Any],
    done: str,
    *,
    back: str = "/ui/alerts",
    needs: str = "silencing",
) -> Response:
    """A form's action: the viewer signed in, the form's CSRF token right and the admin
    scope (else a 403 page), then ``action`` and a redirect to the form's ``next`` (or
    ``back``) with ``done=`` for its notice."""
    try:
        who = await viewer(request)
    except LoginRequired:
        return login_redirect(back)
    try:
        form = await _form(request)
        if not csrf_ok(form, who.csrf):
            raise _stale_form()
        if not who.can_act:
            raise Forbidden(f"your token has the read scope only: {needs} needs admin")
        with acting_as(who.actor):  # the audit trail records the change as the viewer's
            await run_in_threadpool(action, who, form)
    except WatchkeeperError as exc:
        return _error_page(exc, who)
    target = safe_next(form.get("next") or back)
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}done={done}", 303)


def _alerts_available() -> None:
    if not alerts_view.available():
        raise InputError("alerts are not available in this build")


@router.post("/ui/alerts/silence")
async def silence(request: Request) -> Response:
    def action(who: Viewer, form: dict[str, str]) -> Any:
        _alerts_available()
        return alerts_view.silence_alert(
            store_of(request),
            form.get("alert", ""),
            form.get("duration", ""),
            form.get("comment", ""),
            created_by=who.name,
        )

    return await _act(request, action, "silenced")


@router.post("/ui/alerts/silences/{silence_id}/expire")
async def end_silence(request: Request, silence_id: int) -> Response:
    def action(_who: Viewer, _form: dict[str, str]) -> Any:
        _alerts_available()
        return alerts_view.end_silence(store_of(request), silence_id)

    return await _act(request, action, "ended")


def _login_page(
    request: Request, target: str, problem: str | None = None, status: int = 200
) -> Response:
    csrf, new = cookie_csrf(request)
    context = {"nav": "", "next": target, "problem": problem, "csrf": csrf}
    response = page("login.html.j2", context, status=status)
    if new:
        remember_csrf(response, request, csrf)
    return response


@router.get("/ui/login")
async def login_form(request: Request, next: str = "/") -> Response:
    if not tokens_required(request):
        return RedirectResponse(safe_next(next), 303)
    return _login_page(request, safe_next(next))


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    target = safe_next(form.get("next"))
    if not tokens_required(request):
        return RedirectResponse(target, 303)
    if not csrf_ok(form, cookie_csrf(request)[0]):
        return _login_page(request, target, str(_stale_form()), 403)
    limiter = request.app.state.limiter
    client = client_address(request)
    try:
        limiter.check(client)
    except TooManyFailures as exc:
        response = _login_page(request, target, str(exc), 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    token = form.get("token", "").strip()
    store = store_of(request)
    scopes = await run_in_threadpool(check_token, store, token) if token else None
    if not scopes:
        if token:
            limiter.fail(client)
        return _login_page(request, target, "That token is not valid.", 401)
    if not {"read", "admin"} & set(scopes):
        problem = (
            f"That token has the scopes {', '.join(scopes)}; the dashboard needs read or admin."
        )
        return _login_page(request, target, problem, 401)
    hours = request.app.state.settings.session_hours
    token_id = token.split("_", 2)[1]
    session_id, _ = await run_in_threadpool(open_session, store, token_id, scopes, hours)
    response = RedirectResponse(target, 303)
    set_session(response, request, session_id, hours)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    """End the session (its row is deleted: the cookie opens nothing any more)."""
    if not tokens_required(request):
        return RedirectResponse("/", 303)
    try:
        who = await viewer(request)
    except LoginRequired:
        who = None
    if who is not None:
        if not csrf_ok(await _form(request), who.csrf):
            return _error_page(_stale_form(), who)
        await run_in_threadpool(end_session, store_of(request), request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/ui/login", 303)
    clear_session(response, request)
    return response


@router.get("/ui/static/{name}")
async def static(request: Request, name: str) -> Response:
    try:
        return await run_in_threadpool(serve_asset, request, name)
    except WatchkeeperError as exc:
        return _error_page(exc, None)
