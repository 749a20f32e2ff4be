"""Readiness: ``GET /readyz`` says whether the service can take and keep events now.

``/healthz`` (``models_api``) is liveness: the process answers, nothing more, so it stays
cheap. ``/readyz`` runs the checks below, each bounded by :data:`CHECK_TIMEOUT` seconds, and
answers 200 with what it checked, or 503 with the error body, the failed checks and
``Retry-After`` — the answer a load balancer or Kubernetes readiness probe needs to stop
sending traffic while the database or the disk cannot take it.

* ``database``: a real query (``SELECT 1``) on the store's engine;
* ``disk``: the data directory has at least ``ready_min_free_mb`` free (the lake and, on
  SQLite, the database live there) and a small file can be written, synced and removed.

Open without a token, like ``/healthz`` (``server/auth.py``): it names no model and no data.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from watchkeeper import __version__
from watchkeeper.server.deps import SettingsDep, StoreDep
from watchkeeper.server.errors import error_body, errors
from watchkeeper.server.schemas import Out
from watchkeeper.settings import Settings
from watchkeeper.store.state import Store

CHECK_TIMEOUT = 2.0  # seconds per check: a hung database is not ready
RETRY_AFTER = 5  # seconds: the 503's Retry-After
PROBE_BYTES = 4096

router = APIRouter(tags=["models"])


class Check(Out):
    name: str = Field(description="database or disk")
    ok: bool
    detail: str = Field(description="what was found, or the error")
    seconds: float = Field(description="how long the check took")


class Readiness(Out):
    status: str = Field(description="ready")
    version: str
    checks: list[Check]


def _database(store: Store) -> str:
    with store.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar_one()
    return f"{store.engine.dialect.name}: SELECT 1 answered"


def _disk(data_dir: Path, min_free_mb: float) -> str:
    free = shutil.disk_usage(data_dir).free
    if free < min_free_mb * 2**20:
        raise OSError(
            f"{free / 2**20:.1f} MiB free in the data directory, under ready_min_free_mb "
            f"({min_free_mb:g})"
        )
    probe = data_dir / f".ready-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        probe.unlink(missing_ok=True)
    return f"{free / 2**20:.0f} MiB free, writable"


async def _run(name: str, check: Callable[[], str]) -> Check:
    began = time.monotonic()
    try:
        detail = await asyncio.wait_for(run_in_threadpool(check), CHECK_TIMEOUT)
        ok = True
    except TimeoutError:
        detail, ok = f"no answer within {CHECK_TIMEOUT:g} s", False
    except Exception as exc:  # any failure of a check is the answer: not ready
        detail, ok = " ".join(f"{type(exc).__name__}: {exc}".split())[:500], False
    return Check(name=name, ok=ok, detail=detail, seconds=round(time.monotonic() - began, 4))


async def readiness(store: Store, settings: Settings) -> list[Check]:
    """Run every check (concurrently, each bounded) and return their results."""
    return list(
        await asyncio.gather(
            _run("database", lambda: _database(store)),
            _run("disk", lambda: _disk(settings.data_dir, settings.ready_min_free_mb)),
        )
    )


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            **errors(503)[503],
            "description": "Not ready: the database or the data directory's disk failed its "
            "check (the error lists each check); retry after the Retry-After seconds",
        }
    },
)
async def readyz(store: StoreDep, settings: SettingsDep) -> object:
    """Readiness: the database answers a query and the data directory's disk can be written.
    Always open, even when tokens are required."""
    checks = await readiness(store, settings)
    if all(c.ok for c in checks):
        return Readiness(status="ready", version=__version__, checks=checks)
    failed = "; ".join(f"{c.name}: {c.detail}" for c in checks if not c.ok)
    body = error_body(
        503, "NotReady", f"not ready: {failed}", checks=[c.model_dump() for c in checks]
    )
    return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER)})
