"""Answering probes while the service starts: alive at once, ready once migrated and built.

``watchkeeper serve`` serves :class:`Starting`, which wraps the application of
``create_app``. Its lifespan returns at once, so the socket answers from the first moment,
and in the background it migrates the state store (``store.migrations.migrate``: under the
migrations' lock, so of several replicas starting together one migrates and the others wait
for it), builds the application, runs the application's own lifespan (the processor, the
evaluator ...) and from then on hands every request to it. Until then:

* ``GET /healthz`` answers 200 ``{"status": "starting", "phase": "migrating"}`` — alive, so an
  orchestrator does not kill a replica for a long migration;
* ``GET /readyz`` answers 503 (``NotReady``, ``Retry-After``): a load balancer or a Kubernetes
  readiness probe sends it no traffic while the migrations run;
* every other request waits until the application runs and is then answered by it, as
  before this wrapper, when the bound socket's backlog held the requests of a starting
  process (a client that polls ``/healthz`` and then calls the API needs no change).

When starting fails (the database refuses the migration, the SQLite file has another owner),
``/healthz`` answers 503 with the error and ``on_failure`` is called (the CLI stops the server
and exits non-zero with the error's line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from watchkeeper import __version__
from watchkeeper.server.errors import error_body
from watchkeeper.settings import Settings
from watchkeeper.store.engine import create_engine
from watchkeeper.store.leases import default_replica_id
from watchkeeper.store.migrations import migrate

log = logging.getLogger("watchkeeper.server")
RETRY_AFTER = 5  # seconds
PROBES = ("/healthz", "/readyz")  # answered at once while starting
_T = TypeVar("_T")


def migrate_store(url: str) -> str:
    """Bring the database to the newest revision; return it."""
    engine = create_engine(url)
    try:
        return migrate(engine)
    finally:
        engine.dispose()


async def _in_thread(fn: Callable[[], _T]) -> _T:
    """``fn()`` in a daemon thread (a migration waiting for another replica's lock must not
    keep a stopping process alive)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, name="wk-starting", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class Starting:
    """An ASGI application: the probes' answers until ``build(settings)``'s app is running."""

    def __init__(
        self,
        settings: Settings,
        build: Callable[[Settings], FastAPI],
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not settings.replica_id:
            settings = settings.model_copy(update={"replica_id": default_replica_id()})
        self.settings, self.build, self.on_failure = settings, build, on_failure
        self.app: FastAPI | None = None
        self.phase = "migrating"
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # running, or failed
        self._running: AbstractAsyncContextManager[Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.app is None and scope.get("path") not in PROBES:
            await self._settled.wait()  # the request waits for the application
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._answer(scope, send)
        else:  # a websocket and the app failed to start: refused
            await send({"type": "websocket.close", "code": 1013})

    async def _start(self) -> None:
        try:
            url = self.settings.sqlalchemy_url
            revision = await _in_thread(lambda: migrate_store(url))
            log.info("replica %s: database at revision %s", self.settings.replica_id, revision)
            self.phase = "starting"
            app = await _in_thread(lambda: self.build(self.settings))
            running = app.router.lifespan_context(app)
            await running.__aenter__()
            self._running, self.app = running, app
            self.phase = "running"
        except Exception as exc:
            self.error, self.phase = exc, "failed"
            log.error("watchkeeper could not start: %s", exc)
            if self.on_failure is not None:
                self.on_failure(exc)
        finally:
            self._settled.set()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._task = asyncio.create_task(self._start())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._task is not None and not self._task.done():
                    self._task.cancel()  # still migrating or building: the thread is a daemon
                if self._running is not None:
                    await self._running.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer(self, scope: Scope, send: Send) -> None:
        path = scope.get("path", "")
        headers = [(b"content-type", b"application/json")]
        if path == "/healthz":
            status = 503 if self.error is not None else 200
            body: dict[str, Any] = {
                "status": "failed" if self.error is not None else "starting",
                "version": __version__,
                "replica": self.settings.replica_id,
                "leases": [],
                "phase": self.phase,
            }
            if self.error is not None:
                body["error"] = str(self.error)
        else:
            status = 503
            headers.append((b"retry-after", str(RETRY_AFTER).encode()))
            what = "migrating the database" if self.phase == "migrating" else self.phase
            if self.error is not None:
                what = f"failed to start: {self.error}"
            kind = "NotReady" if path == "/readyz" else "Starting"
            body = error_body(503, kind, f"not ready: {what}", phase=self.phase)
        data = json.dumps(body).encode()
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
