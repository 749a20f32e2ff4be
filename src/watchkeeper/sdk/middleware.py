"""``WatchkeeperMiddleware``: log every prediction request of an ASGI model service.

A pure ASGI middleware (no Starlette import), for FastAPI, Starlette or any ASGI app::

    app = FastAPI()
    app.add_middleware(WatchkeeperMiddleware, client=client, model="churn", path="/predict")

For each request to ``path`` with a method in ``methods`` it logs one prediction:

* features: the JSON request body (an object), or its ``features_field`` member when given;
* prediction: the ``prediction_field`` member of the JSON response object when present
  (and ``scores_field`` as the class → probability map), else the whole JSON response;
* latency: from the request's start to the end of the response body;
* status: ``"error"`` for a 5xx response or an exception (logged, then re-raised), with the
  status code or the exception as the message. 4xx responses are not predictions and are
  not logged;
* prediction id: the request's ``id_header`` when the caller sent one, else a new one; the
  response carries it in the same header, so the caller can send the label later.

Bodies over ``max_body_bytes`` are passed through untouched but not parsed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._events import new_prediction_id

if TYPE_CHECKING:
    from ._client import Client

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Capture:
    """Up to ``limit`` bytes of a body; ``None`` once it is longer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data: bytearray | None = bytearray()

    def add(self, chunk: bytes) -> None:
        if self.data is not None:
            if len(self.data) + len(chunk) > self.limit:
                self.data = None
            else:
                self.data += chunk

    def json(self) -> Any:
        if not self.data:
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            return None


class WatchkeeperMiddleware:
    """Logs requests to ``path`` as predictions of ``model`` through ``client``."""

    def __init__(
        self,
        app: ASGIApp,
        client: Client,
        model: str,
        *,
        path: str = "/predict",
        methods: Iterable[str] = ("POST",),
        version: str | None = None,
        features_field: str | None = None,
        prediction_field: str = "prediction",
        scores_field: str = "scores",
        id_header: str = "x-prediction-id",
        max_body_bytes: int = 1 << 20,
    ) -> None:
        self.app = app
        self.client = client
        self.model = model
        self.path = path
        self.methods = frozenset(m.upper() for m in methods)
        self.version = version
        self.features_field = features_field
        self.prediction_field = prediction_field
        self.scores_field = scores_field
        self.id_header = id_header.lower().encode("latin-1")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") != self.path
            or scope.get("method", "GET") not in self.methods
        ):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = dict(scope.get("headers") or ()).get(self.id_header)
        prediction_id = given.decode("latin-1") if given else new_prediction_id()
        request, response = _Capture(self.max_body_bytes), _Capture(self.max_body_bytes)
        status = 500

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.add(message.get("body", b""))
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", ()), (self.id_header, prediction_id.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                response.add(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception as exc:
            self._log(prediction_id, request, None, start, exc)
            raise
        if status >= 500:
            self._log(prediction_id, request, None, start, f"HTTP {status}")
        elif status < 400:
            self._log(prediction_id, request, response, start, None)

    def _log(
        self,
        prediction_id: str,
        request: _Capture,
        response: _Capture | None,
        start: float,
        error: BaseException | str | None,
    ) -> None:
        latency_ms = (time.perf_counter() - start) * 1000.0
        body = request.json()
        if self.features_field is not None and isinstance(body, dict):
            body = body.get(self.features_field)
        features = body if isinstance(body, dict) else None
        prediction, scores = None, None
        answer = None if response is None else response.json()
        if isinstance(answer, dict) and self.prediction_field in answer:
            prediction = answer[self.prediction_field]
            found = answer.get(self.scores_field)
            scores = found if isinstance(found, dict) else None
        elif isinstance(answer, dict | list):
            prediction = json.dumps(answer, separators=(",", ":"))
        else:
            prediction = answer
        self.client.log_prediction(
            self.model,
            features,
            prediction,
            prediction_id=prediction_id,
            version=self.version,
            latency_ms=latency_ms,
            scores=scores,
            status="ok" if error is None else "error",
            error=error,
        )
