"""``Client``: log predictions and ground truth from a model service without waiting for the
network. See ``docs/sdk.md`` for the guarantees and every parameter."""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import os
import re
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

from ._deadletter import DeadLetter, DeadLetters, Strikes, spool_records
from ._events import ACTUAL, PREDICTION, spool_line
from ._http import Transport
from ._monitor import Monitor
from ._request import register, request
from ._sender import Sender
from ._spiller import Marker
from ._spool import Spool
from ._stats import ClientStats, Counters

# the content type of a serialised DatasetProfile (the service's ingest.pushed)
PROFILE_TYPE = "application/vnd.watchkeeper.profile"
_urandom = os.urandom
_now = time.time


def default_spool_dir(url: str) -> Path:
    """``$XDG_CACHE_HOME/watchkeeper/spool/<host_port>`` (``~/.cache`` when unset): one
    directory per server, so two clients of two servers never resend each other's events."""
    cache = os.environ.get("XDG_CACHE_HOME")
    if not cache:
        try:
            cache = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no home directory (some containers)
            cache = tempfile.gettempdir()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[-1]).strip("_") or "default"
    return Path(cache) / "watchkeeper" / "spool" / slug


class Client:
    """Logs predictions and actuals to a watchkeeper server in the background.

    ``log_prediction`` and ``log_actual`` append to an in-memory buffer and return; a daemon
    thread batches, sends, retries and spools, and a second one sheds a backlog beyond
    ``max_buffer`` to the spool (a log call waits only at twice ``max_buffer``, for the
    disk). Events survive a server outage and a client restart through the spool directory.
    Use one client per process (it is thread-safe).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_buffer: int = 10_000,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_after: int = 3,
        spool_max_bytes: int = 1 << 30,
        timeout: float = 10.0,
        backoff_base: float = 0.5,
        max_backoff: float = 30.0,
        exit_timeout: float = 2.0,
        dead_letter_attempts: int = 5,
        dead_letter_seconds: float = 60.0,
    ) -> None:
        _check(batch_size >= 1, "batch_size", batch_size, "at least 1")
        _check(flush_interval > 0, "flush_interval", flush_interval, "positive")
        _check(max_buffer >= batch_size, "max_buffer", max_buffer, "at least batch_size")
        _check(spool_after >= 1, "spool_after", spool_after, "at least 1")
        _check(spool_max_bytes > 0, "spool_max_bytes", spool_max_bytes, "positive")
        _check(timeout > 0, "timeout", timeout, "positive")
        _check(backoff_base > 0, "backoff_base", backoff_base, "positive")
        _check(max_backoff >= backoff_base, "max_backoff", max_backoff, "at least backoff_base")
        _check(exit_timeout >= 0, "exit_timeout", exit_timeout, "zero or more")
        attempts, seconds = dead_letter_attempts, dead_letter_seconds
        _check(attempts >= 1, "dead_letter_attempts", attempts, "at least 1")
        _check(seconds >= 0, "dead_letter_seconds", seconds, "zero or more")
        self.url = url
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir(url)
        self.dead_letter_path = self.spool_dir / "dead-letters" / "batches.jsonl"
        self._dead_letter_bound = (attempts, seconds)
        self.exit_timeout = exit_timeout
        self._transport_args = (url, token, timeout)
        self._sender_args: dict[str, Any] = {
            "batch_size": batch_size,
            "flush_interval": flush_interval,
            "max_buffer": max_buffer,
            "spool_after": spool_after,
            "backoff_base": backoff_base,
            "max_backoff": max_backoff,
        }
        self._spool_max_bytes = spool_max_bytes
        self._buffer: collections.deque[Any] = collections.deque()
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._wake_at = batch_size  # from this length on, a log call wakes the sender
        self._closed = False
        self._start()
        if hasattr(os, "register_at_fork"):  # POSIX: cheaper than comparing os.getpid() per call
            os.register_at_fork(after_in_child=_on_fork(weakref.ref(self)))
        atexit.register(self._at_exit)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._forked = False  # set in a forked child (register_at_fork)
        self._counters = Counters()
        self._spool = Spool(self.spool_dir, max_bytes=self._spool_max_bytes)
        self._dead_letters = DeadLetters(self.dead_letter_path, max_bytes=self._spool_max_bytes)
        self._sender = Sender(
            buffer=self._buffer,
            transport=Transport(*self._transport_args),
            spool=self._spool,
            dead_letters=self._dead_letters,
            strikes=Strikes(*self._dead_letter_bound),
            counters=self._counters,
            **self._sender_args,
        )
        try:
            self._sender.start()
        except RuntimeError as exc:  # a forked child at interpreter shutdown: spool only
            self._counters.add(error=f"sender not started: {exc}")

    # ------------------------------------------------------------ the hot path
    def log_prediction(
        self,
        model: str,
        features: Mapping[str, Any] | None,
        prediction: Any,
        *,
        prediction_id: str | None = None,
        version: str | None = None,
        timestamp: float | str | dt.datetime | None = None,
        latency_ms: float | None = None,
        scores: Mapping[str, float] | None = None,
        segments: Mapping[str, Any] | None = None,
        status: str = "ok",
        error: str | BaseException | None = None,
    ) -> str:
        """Buffer one prediction and return its id (generated when not given).

        Never waits for the network; ``features`` is copied (shallowly), so the caller may
        reuse the dict. ``timestamp`` defaults to now (epoch seconds; a datetime or an ISO
        8601 string also work). ``error`` may be an exception (its type and message are sent).
        """
        if prediction_id is None:
            raw = bytearray(_urandom(16))  # new_prediction_id(), inlined: a call costs ~80 ns
            raw[6] = raw[6] & 0x0F | 0x40
            raw[8] = raw[8] & 0x3F | 0x80
            prediction_id = raw.hex()
        buffer = self._buffer
        buffer.append(
            (
                PREDICTION,
                model,
                prediction_id,
                _now() if timestamp is None else timestamp,
                {} if features is None else dict(features),
                prediction,
                version,
                latency_ms,
                scores,
                segments,
                status,
                error,
            )
        )
        if len(buffer) >= self._wake_at:
            self._pressure()
        return prediction_id

    def log_actual(
        self,
        model: str,
        prediction_id: str,
        label: Any,
        *,
        timestamp: float | str | dt.datetime | None = None,
    ) -> None:
        """Buffer the ground truth of an earlier prediction (joined on ``prediction_id``)."""
        if not prediction_id or label is None:
            raise ValueError("log_actual needs a prediction_id and a label (not None)")
        self._buffer.append(
            (ACTUAL, model, prediction_id, label, _now() if timestamp is None else timestamp)
        )
        if len(self._buffer) >= self._wake_at:
            self._pressure()

    def _pressure(self) -> None:
        """A log call found ``batch_size`` events waiting (or the client closed). It only wakes
        the threads: spilling to disk is the spiller's, unless even it cannot keep up."""
        if self._forked:
            self._after_fork()
        if self._closed:  # logged after close(): straight to the spool, released at once
            self._sender.spill()
            self._spool.close()
            return
        size = len(self._buffer)
        if size > self._max_buffer:
            if size >= 2 * self._max_buffer:
                self._sender.spiller.make_room()  # the disk is slower than the logging: wait
            else:
                self._sender.spiller.wake()
        self._sender.wake()

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its locks may be held. Start
        afresh on the same buffer (events copied from the parent may be sent twice: the server
        counts them as duplicates) with a segment of our own."""
        self._spool.abandon()
        self._start()

    # ------------------------------------------------------------ control
    def monitor(
        self, model: str, version: str | None = None, *, segments: Mapping[str, Any] | None = None
    ) -> Monitor:
        """A decorator and context manager that times a prediction and logs it (see Monitor)."""
        return Monitor(self, model, version=version, segments=segments)

    def register(
        self,
        model: str,
        reference: Any,
        *,
        version: str = "v1",
        target: str | None = None,
        prediction: str | None = None,
        scores: str | list[str] | None = None,
        segments: str | list[str] | None = None,
        features: str | list[str] | None = None,
        ignore: str | list[str] | None = None,
        window_seconds: int | None = None,
        drift_reference: str | None = None,
        champion: bool = True,
        constraints: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        on_violation: str | None = None,
        card: Mapping[str, str] | None = None,
        artifact: str | os.PathLike[str] | None = None,
        artifact_format: str | None = None,
        artifact_inputs: list[str] | None = None,
        trusted_types: list[str] | None = None,
        trust_pickle: bool = False,
    ) -> dict[str, Any]:
        """Register ``model`` (if new) and ``version`` with its training reference; return the
        server's answer (the inferred schema among it). ``artifact`` (a ``.onnx`` or
        ``.skops`` file, a pickle only with ``trust_pickle``, or an MLflow ``models:/`` or
        ``runs:/`` URI) attaches the version's model to serve (see ``attach_artifact``).
        Unlike the log calls this waits for the server, and raises ``RequestError`` when it
        refuses (e.g. 409: the version exists).
        ``constraints`` (a mapping, a JSON file, or ``"suggest"``: proposed from the reference)
        and ``on_violation`` (``quarantine`` or ``count``) set validation rules; see
        ``watchkeeper.constraints``. ``features`` and ``ignore`` (a column name or a list)
        force columns to be features or leave them out of monitoring; the answer's ``roles``
        list each column's role and why. ``reference`` may be a fitted
        ``watchkeeper.Reference`` (or the directory its ``save`` wrote): the version then gets
        the Reference's schema as fitted. ``card`` (``description``, ``owner``,
        ``intended_use``) is the version's model card metadata.
        """
        url, token, timeout = self._transport_args
        return register(
            url,
            model,
            reference,
            token=token,
            version=version,
            target=target,
            prediction=prediction,
            scores=scores,
            segments=segments,
            features=features,
            ignore=ignore,
            window_seconds=window_seconds,
            drift_reference=drift_reference,
            champion=champion,
            constraints=constraints,
            on_violation=on_violation,
            card=card,
            artifact=artifact,
            artifact_format=artifact_format,
            artifact_inputs=artifact_inputs,
            trusted_types=trusted_types,
            trust_pickle=trust_pickle,
            timeout=timeout,
        )

    def reference_profile(self, model: str, version: str | None = None) -> bytes:
        """The serialised reference profile of ``version`` (the champion when None):
        ``watchkeeper.DatasetProfile.from_bytes`` of it gives the frozen spec and schema that
        :meth:`log_profile` needs its profiles built on."""
        query = f"?{urlencode({'version': version})}" if version else ""
        url, token, timeout = self._transport_args
        blob: bytes = request(
            url,
            "GET",
            f"/v1/models/{quote(model, safe='')}/profiles/reference{query}",
            token=token,
            timeout=timeout,
            binary=True,
        )
        return blob

    def log_profile(
        self,
        model: str,
        profile: Any,
        *,
        window: float | dt.datetime,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Send a window's profile instead of its rows: a batch job (e.g. on Spark,
        ``watchkeeper.spark.profile(sdf, reference)``) profiles what it scored on the version's
        frozen spec, and the service merges the profile into the window that holds
        ``window`` (Unix seconds or a datetime), which is then evaluated as if the rows had
        been logged. ``profile``: a ``DatasetProfile`` or its ``to_bytes()``. Unlike the log
        calls this waits for the server and raises ``RequestError`` when it refuses (400:
        the profile is not on the version's spec). Each call adds its rows to the window:
        send a window's profile once."""
        if isinstance(profile, bytes | bytearray | memoryview):
            blob = bytes(profile)
        elif callable(getattr(profile, "to_bytes", None)):
            blob = profile.to_bytes()
        else:
            raise TypeError(
                f"profile: expected a DatasetProfile or bytes, got {type(profile).__name__}"
            )
        if isinstance(window, dt.datetime):
            seconds = window.timestamp()  # naive datetimes are local time, as in Python
        elif isinstance(window, int | float) and not isinstance(window, bool):
            seconds = float(window)
        else:
            raise TypeError(f"window: Unix seconds or a datetime, got {type(window).__name__}")
        query = {"window": repr(seconds), **({"version": version} if version else {})}
        url, token, timeout = self._transport_args
        answer: dict[str, Any] = request(
            url,
            "POST",
            f"/v1/models/{quote(model, safe='')}/profiles?{urlencode(query)}",
            content=(blob, PROFILE_TYPE),
            token=token,
            timeout=timeout,
        )
        return answer

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is acknowledged by the server: True.

        After ``timeout`` seconds (None: no limit) what is still unacknowledged goes to the
        spool, to be resent in the background, and the call returns False.
        """
        if self._forked or os.getpid() != self._pid:
            self._after_fork()
        marker = Marker()
        self._buffer.append(marker)
        self._sender.request_flush()
        if self._closed:
            self._sender.spill()
            return False
        if marker.wait(timeout):
            return True
        self._sender.spill()
        return False

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush (up to ``timeout``), stop the sender, keep the rest in the spool.

        Returns whether everything was acknowledged. Later log calls go to the spool, to be
        sent by the next client that uses the same ``spool_dir``.
        """
        if self._closed:
            return True
        done = self.flush(timeout)
        self._closed = True
        self._wake_at = 0
        self._sender.stop(timeout=1.0)
        self._sender.spill()
        self._spool.close()
        atexit.unregister(self._at_exit)
        return done

    def dead_letters(self) -> list[DeadLetter]:
        """The batches the server refused for good, oldest first, with its answer (see
        ``docs/sdk.md``): in the file ``dead_letter_path``, shared by the clients of one
        ``spool_dir``."""
        return self._dead_letters.read()

    def resend_dead_letters(self) -> int:
        """Move every dead-lettered event back to the spool, to be sent again in the background
        (after the model was registered, say); returns how many. The file is emptied."""

        def requeue(letters: list[DeadLetter]) -> None:
            self._spool.append([spool_line(record) for record in spool_records(letters)])

        count = sum(len(letter.events) for letter in self._dead_letters.drain(requeue))
        if count and not self._closed:
            self._sender.request_flush()
        return count

    def _at_exit(self) -> None:
        self.close(self.exit_timeout)

    @property
    def stats(self) -> ClientStats:
        """Counters since the client started (see ClientStats)."""
        return self._counters.snapshot(sum(1 for i in list(self._buffer) if type(i) is tuple))

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}, spool_dir={str(self.spool_dir)!r})"


def _on_fork(ref: weakref.ref[Client]) -> Callable[[], None]:
    def forked() -> None:
        client = ref()
        if client is not None:
            client._forked = True

    return forked


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
