"""``client.monitor(model)``: time a prediction and log it, as a decorator or a ``with`` block.

As a decorator on ``predict(features) -> prediction`` (sync or async)::

    @client.monitor("churn")
    def predict(features):
        return model.predict_one(features)

it logs the features (the first positional argument that is a mapping, else the keyword
arguments), the return value as the prediction, and the latency. When the function raises,
it logs ``status="error"`` with the exception's type and message and re-raises. The id of the
last prediction logged in the current thread or task is ``monitor.last_prediction_id``.

As a context manager, the block fills in an :class:`Observation`::

    with client.monitor("churn") as obs:
        obs.features = features
        obs.prediction = model.predict_one(features)
    client.log_actual("churn", obs.prediction_id, label)  # later
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._events import new_prediction_id

if TYPE_CHECKING:
    from ._client import Client

F = TypeVar("F", bound=Callable[..., Any])
# Module-level on purpose: a ContextVar per Monitor would grow every thread's context by one
# key per monitor ever created (a monitor made per request would leak).
_LAST: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "watchkeeper_last_prediction_id", default=None
)


class Observation:
    """One prediction being timed by ``with client.monitor(...) as obs``: set ``features``,
    ``prediction`` and optionally ``scores``, ``segments`` or ``prediction_id`` (generated
    on entry, so it can be returned to your caller before the block ends)."""

    __slots__ = ("_start", "features", "prediction", "prediction_id", "scores", "segments")

    def __init__(self, prediction_id: str, segments: Mapping[str, Any] | None) -> None:
        self.prediction_id = prediction_id
        self.features: Mapping[str, Any] | None = None
        self.prediction: Any = None
        self.scores: Mapping[str, float] | None = None
        self.segments = segments
        self._start = time.perf_counter()


def _features(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    for arg in args:  # the first mapping: also right for methods, where args[0] is self
        if isinstance(arg, Mapping):
            return arg
    return kwargs


_OPEN: contextvars.ContextVar[tuple[Observation, ...]] = contextvars.ContextVar(
    "watchkeeper_open_observations", default=()
)


class Monitor:
    """Decorator and context manager made by :meth:`Client.monitor`; reusable, thread-safe."""

    def __init__(
        self,
        client: Client,
        model: str,
        *,
        version: str | None = None,
        segments: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.version = version
        self.segments = segments

    @property
    def last_prediction_id(self) -> str | None:
        """The id of the prediction a monitor logged last in this thread or asyncio task."""
        return _LAST.get()

    def _log(
        self,
        features: Mapping[str, Any] | None,
        prediction: Any,
        start: float,
        *,
        prediction_id: str | None = None,
        scores: Mapping[str, float] | None = None,
        segments: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        pid = self.client.log_prediction(
            self.model,
            features,
            prediction,
            prediction_id=prediction_id,
            version=self.version,
            latency_ms=(time.perf_counter() - start) * 1000.0,
            scores=scores,
            segments=self.segments if segments is None else segments,
            status="ok" if error is None else "error",
            error=error,
        )
        _LAST.set(pid)

    # ------------------------------------------------------------ decorator
    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    self._log(_features(args, kwargs), None, start, error=exc)
                    raise
                self._log(_features(args, kwargs), result, start)
                return result

            return cast(F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self._log(_features(args, kwargs), None, start, error=exc)
                raise
            self._log(_features(args, kwargs), result, start)
            return result

        return cast(F, run)

    # ------------------------------------------------------------ context manager
    def __enter__(self) -> Observation:
        obs = Observation(new_prediction_id(), self.segments)
        _OPEN.set((*_OPEN.get(), obs))
        return obs

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack = _OPEN.get()
        obs = stack[-1]
        _OPEN.set(stack[:-1])
        error = exc if isinstance(exc, Exception) else None
        if exc is not None and error is None:
            return  # KeyboardInterrupt, SystemExit, cancellation: not a model failure
        self._log(
            obs.features,
            obs.prediction,
            obs._start,
            prediction_id=obs.prediction_id,
            scores=obs.scores,
            segments=obs.segments,
            error=error,
        )

    async def __aenter__(self) -> Observation:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, exc, tb)
