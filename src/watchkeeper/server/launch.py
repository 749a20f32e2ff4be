"""Starting a service process: its listening socket and its claim on the data directory.

Both are taken before anything is written, so a second ``watchkeeper serve`` or ``demo`` that
cannot start says why in one line and leaves the first one's state alone:

* :func:`listen` binds the port itself and hands the socket to uvicorn, so "the port is taken"
  is known before a state file is created, and no other process can take the port in between.
* :class:`DataDirLock` holds an exclusive ``flock`` on ``<data dir>/.watchkeeper.lock`` for as
  long as the process runs. The kernel releases it when the process dies, even by ``kill -9``,
  so a crash never leaves a stale lock behind.

Both raise :class:`CannotStart` (exit code 3).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from watchkeeper.errors import WatchkeeperError

LOCK_NAME = ".watchkeeper.lock"


class CannotStart(WatchkeeperError):
    """The service cannot start: its port is taken, or its data directory has another owner."""

    exit_code = 3


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or :class:`CannotStart` naming the port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotStart(
                f"port {port} on {host} is already in use by another process; "
                "stop it or choose another port with --port"
            ) from exc
        raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class DataDirLock:
    """An exclusive claim on a data directory for this process's lifetime.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with DataDirLock(d, owner="test"):
    ...     try:
    ...         DataDirLock(d).acquire()
    ...     except CannotStart as exc:
    ...         print(str(exc).split(" (")[0].endswith("is in use by another watchkeeper process"))
    True
    """

    def __init__(self, path: Path, *, owner: str = "") -> None:
        self.path = Path(path)
        self.owner = owner
        self._fd: int | None = None

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_NAME

    def acquire(self) -> DataDirLock:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise CannotStart(
                f"data directory {self.path} is in use by another watchkeeper process"
                f"{f' ({holder})' if holder else ''}; stop it or choose another --data-dir"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}{f', {self.owner}' if self.owner else ''}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
