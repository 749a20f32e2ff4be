"""The processor's dead letters: list them, replay one once its cause is fixed, or delete it.

A logged batch the processor failed on ``processor_max_attempts`` times in a row waits in
``wk_dead_batches`` (``store/dead_letters.py``). Listing needs the ``read`` scope; replaying and
deleting change what is stored and need ``admin`` (``server/auth.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from watchkeeper.server.deps import StoreDep
from watchkeeper.server.errors import errors
from watchkeeper.server.params import MAX_INT, NO_NUL, Offset, path_id
from watchkeeper.server.schemas.ingest import DeadLetters, ReplayedDeadLetter
from watchkeeper.store import dead_letters as letters
from watchkeeper.store.state import NotFoundError

LIST_MAX = 10_000

router = APIRouter(tags=["models"], dependencies=[NO_NUL])

DeadId = Annotated[int, path_id("a dead letter's id (the `id` of the list)")]


@router.get(
    "/v1/models/{model}/dead-letters",
    response_model=DeadLetters,
    responses=errors(400, 401, 403, 404, 422),
)
async def dead_letters(
    model: str,
    store: StoreDep,
    limit: Annotated[int, Query(ge=0, le=MAX_INT, description=f"at most {LIST_MAX}")] = 100,
    offset: Offset = 0,
) -> object:
    """Logged batches the processor failed on too often (``processor_max_attempts`` in a
    row), with their last error, oldest first; their events are not processed."""
    await run_in_threadpool(store.model, model)
    rows = await run_in_threadpool(
        lambda: letters.dead_letters(store, model, limit=min(limit, LIST_MAX), offset=offset)
    )
    return {"model": model, "items": rows}


@router.post(
    "/v1/models/{model}/dead-letters/{dead_id}/replay",
    response_model=ReplayedDeadLetter,
    responses=errors(400, 401, 403, 404, 422),
)
async def replay_dead_letter(model: str, dead_id: DeadId, store: StoreDep) -> object:
    """Log the batch again for the processor (once what made it fail is fixed) and remove it
    from the dead letters; ids stored meanwhile count as duplicates, and a batch that still
    fails comes back here."""
    await run_in_threadpool(store.model, model)
    done = await run_in_threadpool(letters.replay_dead_letter, store, model, dead_id)
    if done is None:
        raise NotFoundError(f"model {model!r} has no dead letter {dead_id}")
    return done


@router.delete(
    "/v1/models/{model}/dead-letters/{dead_id}",
    status_code=204,
    response_class=Response,
    responses=errors(400, 401, 403, 404, 422),
)
async def delete_dead_letter(model: str, dead_id: DeadId, store: StoreDep) -> Response:
    """Drop the batch and its events for good."""
    await run_in_threadpool(store.model, model)
    if not await run_in_threadpool(letters.delete_dead_letter, store, model, dead_id):
        raise NotFoundError(f"model {model!r} has no dead letter {dead_id}")
    return Response(status_code=204)
