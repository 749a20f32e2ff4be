"""The promotion routes: version states (champion, challengers, retired), challenge,
promote, rollback, retire, the promotion policy and the verdicts (docs/promotion.md).

Reads need the ``read`` scope, every change ``admin`` (``server/auth.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from watchkeeper.errors import InputError
from watchkeeper.promotion.policy import Policy
from watchkeeper.promotion.verdict import policy_of
from watchkeeper.server.bodies import read_json
from watchkeeper.server.deps import StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.openapi import request_body
from watchkeeper.server.params import MAX_INT, NO_NUL
from watchkeeper.server.schemas.promotion import (
    ChallengeIn,
    PolicyIn,
    PolicyOut,
    PromoteIn,
    Swapped,
    Verdicts,
    VersionState,
    VersionStates,
)
from watchkeeper.store import promotion as states

router = APIRouter(tags=["promotion"], dependencies=[NO_NUL])
VERDICTS_MAX = 1000


def _changed(request: Request, model: str) -> None:
    """This process's router reads the model's canaries again at once."""
    router_ = getattr(request.app.state, "router", None)
    if router_ is not None:
        router_.forget(model)


async def _object(request: Request, fields: set[str], *, empty: bool = False) -> dict[str, Any]:
    body = await request.body()
    if not body.strip() and empty:
        return {}
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InputError("body: expected a JSON object")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InputError(f"body: unknown field(s) {unknown}; the fields are {sorted(fields)}")
    return data


@router.get(
    "/v1/models/{model}/versions",
    response_model=VersionStates,
    responses=errors(400, 401, 403, 404),
)
async def version_states(model: str, request: Request, store: StoreDep) -> object:
    """Every version with its state: champion, challenger (shadow or canary), retired or
    registered; and this process's shadow copies of the model."""
    info = await run_in_threadpool(store.model, model)
    versions = await run_in_threadpool(states.states, store, model)
    shadow = getattr(request.app.state, "shadow", None)
    counts = shadow.counts().get(model, {}) if shadow is not None else {}
    return {
        "model": model,
        "champion": info.champion,
        "versions": versions,
        "shadow": {
            "dropped": counts.get("dropped", 0),
            "scored": counts.get("scored", 0),
            "pending": shadow.pending() if shadow is not None else 0,
        },
    }


@router.post(
    "/v1/models/{model}/versions/{version}/challenge",
    response_model=VersionState,
    responses=errors(400, 401, 403, 404, 409),
    openapi_extra=request_body("the challenger's mode", {"application/json": ChallengeIn}),
)
async def challenge(model: str, version: str, request: Request, store: StoreDep) -> object:
    """Make a version a challenger: ``shadow`` (scores a copy of every request the champion
    answers) or ``canary`` (answers ``share`` of the requests, sticky by ``entity_key``)."""
    body = await _object(request, {"mode", "share", "entity_key"})
    mode, share, key = body.get("mode"), body.get("share"), body.get("entity_key")
    if not isinstance(mode, str):
        raise InputError("mode: required, shadow or canary")
    if share is not None and (isinstance(share, bool) or not isinstance(share, int | float)):
        raise InputError(f"share {share!r}: a number between 0 and 1")
    if key is not None and not isinstance(key, str):
        raise InputError(f"entity_key {key!r}: the name of an input")
    state = await run_in_threadpool(
        lambda: states.challenge(
            store, model, version, mode=mode, share=share, entity_key=key, detail={"by": "api"}
        )
    )
    _changed(request, model)
    return state


@router.post(
    "/v1/models/{model}/promote",
    response_model=Swapped,
    responses=errors(400, 401, 403, 404, 409),
    openapi_extra=request_body("the version to promote", {"application/json": PromoteIn}),
)
async def promote(model: str, request: Request, store: StoreDep) -> object:
    """Make a version the champion, atomically: every request is answered by the old or the
    new champion, none fails. The champion it replaces is retired and recorded for rollback."""
    body = await _object(request, {"version"})
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise InputError("version: required, the version to promote")
    swapped = await run_in_threadpool(
        lambda: states.promote(store, model, version, detail={"by": "api"})
    )
    _changed(request, model)
    return swapped


@router.post(
    "/v1/models/{model}/rollback", response_model=Swapped, responses=errors(400, 401, 403, 404, 409)
)
async def rollback(model: str, request: Request, store: StoreDep) -> object:
    """Restore the champion the current one replaced; the current one is retired."""
    swapped = await run_in_threadpool(lambda: states.rollback(store, model, detail={"by": "api"}))
    _changed(request, model)
    return swapped


@router.post(
    "/v1/models/{model}/versions/{version}/retire",
    response_model=VersionState,
    responses=errors(400, 401, 403, 404, 409),
)
async def retire(model: str, version: str, request: Request, store: StoreDep) -> object:
    """Retire a version (not the champion): it answers and shadows nothing more."""
    state = await run_in_threadpool(
        lambda: states.retire(store, model, version, detail={"by": "api"})
    )
    _changed(request, model)
    return state


@router.get(
    "/v1/models/{model}/promotion-policy",
    response_model=PolicyOut,
    responses=errors(400, 401, 403, 404),
)
async def get_policy(model: str, request: Request, store: StoreDep) -> object:
    """The model's promotion policy and its ``source``: ``api`` (set here), ``settings`` (the
    settings file's ``promotion_policies``) or ``none`` (the defaults, and no verdicts)."""
    await run_in_threadpool(store.model, model)
    configured = getattr(request.app.state, "policies", {})
    policy, source = await run_in_threadpool(policy_of, store, model, configured)
    return {
        "model": model,
        "policy": (policy or Policy()).to_dict(),
        "configured": policy is not None,
        "source": source,
    }


@router.put(
    "/v1/models/{model}/promotion-policy",
    response_model=PolicyOut,
    responses=errors(400, 401, 403, 404),
    openapi_extra=request_body("the promotion policy", {"application/json": PolicyIn}),
)
async def put_policy(model: str, request: Request, store: StoreDep) -> object:
    """Set the model's promotion policy; a bad value answers 400 naming the field."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InputError("body: expected a JSON object of policy fields")
    policy = Policy.from_dict({k: v for k, v in data.items() if v is not None})
    await run_in_threadpool(states.put_policy, store, model, policy.to_dict())
    return {"model": model, "policy": policy.to_dict(), "configured": True, "source": "api"}


@router.get(
    "/v1/models/{model}/verdicts",
    response_model=Verdicts,
    responses=errors(400, 401, 403, 404, 422),
)
async def list_verdicts(
    model: str,
    store: StoreDep,
    limit: Annotated[int, Query(ge=0, le=MAX_INT, description=f"at most {VERDICTS_MAX}")] = 50,
) -> object:
    """The verdicts on the model's challengers with their evidence, newest first."""
    await run_in_threadpool(store.model, model)
    limit = min(limit, VERDICTS_MAX)
    rows = await run_in_threadpool(lambda: states.verdicts(store, model, limit=limit))
    return {"model": model, "verdicts": rows}
