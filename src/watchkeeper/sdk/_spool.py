"""The spool: events the server has not acknowledged, kept on disk across outages and restarts.

A spool directory holds append-only JSON-lines segment files (``<time>-<pid>-<random>.jsonl``,
one record per line). A client appends to its own *active* segment, each write whole lines
followed by ``fsync``; a crash can leave at most one torn last line, which the reader skips
and counts. To resend, the client *seals* its active segment (new writes go to a new one),
sends the sealed segments oldest first, and deletes each once the server acknowledged all of
it. Segments left by a client that exited or crashed are *adopted* by the next client that
finds them. On POSIX an exclusive ``flock`` on every segment a client owns keeps two live
processes (say, web workers sharing a spool directory) from sending or deleting each other's
segments; on Windows there is no lock, so give each process its own ``spool_dir``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SUFFIX = ".jsonl"
SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolFull(OSError):
    """Writing would take the spool over its size limit."""


@dataclass
class Segment:
    path: Path
    handle: BinaryIO  # open for reading and appending; holds the lock
    offset: int = 0  # bytes already acknowledged (this process only)


def _try_lock(handle: BinaryIO) -> bool:
    if sys.platform == "win32":
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class Spool:
    """Segments of one spool directory owned by this client. Thread-safe."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._active: Segment | None = None
        self._sealed: list[Segment] = []
        self._bytes = 0

    # -------------------------------------------------------------- writing
    def append(self, lines: list[bytes], *, sync: bool = True) -> None:
        """Append whole lines (write, flush, and fsync when ``sync``); raises OSError or
        SpoolFull. Without fsync the lines survive a crash of the process, not of the OS."""
        data = b"".join(lines)
        if not data:
            return
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} would exceed spool_max_bytes={self.max_bytes}"
                )
            segment = self._active or self._open_active()
            try:
                segment.handle.write(data)
                segment.handle.flush()
                if sync:
                    os.fsync(segment.handle.fileno())
            except OSError:
                self._seal()  # never append after a possibly torn line
                raise
            self._bytes += len(data)
            if segment.handle.tell() >= self.segment_bytes:
                self._seal()

    def _open_active(self) -> Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{SUFFIX}"
        path = self.directory / name
        handle = open(path, "a+b")  # noqa: SIM115 - owned by the Segment, closed in remove/close
        _try_lock(handle)  # a fresh name: nobody else holds it
        self._active = Segment(path, handle)
        return self._active

    def _seal(self) -> None:
        if self._active is not None:
            if self._active.handle.tell() > 0:
                self._sealed.append(self._active)
            else:
                self._discard(self._active)
            self._active = None

    # -------------------------------------------------------------- reading
    def sendable(self) -> list[Segment]:
        """Seal the active segment, adopt orphans, and list what to resend, oldest first."""
        with self._lock:
            self._seal()
            self._adopt()
            return sorted(self._sealed, key=lambda s: s.path.name)

    def has_data(self) -> bool:
        with self._lock:
            if self._sealed or (self._active is not None and self._active.handle.tell() > 0):
                return True
            self._adopt()
            return bool(self._sealed)

    def _adopt(self) -> None:
        """Take over segments no live client holds (left by a closed or crashed one)."""
        try:
            candidates = sorted(self.directory.glob(f"*{SUFFIX}"))
        except OSError:
            return
        owned = {s.path for s in self._sealed}
        if self._active is not None:
            owned.add(self._active.path)
        for path in candidates:
            if path in owned:
                continue
            try:
                handle = open(path, "a+b")  # noqa: SIM115 - owned by the Segment
            except OSError:
                continue
            if not _try_lock(handle) or os.fstat(handle.fileno()).st_nlink == 0:
                handle.close()  # held by a live client, or deleted after it sent it
                continue
            size = os.fstat(handle.fileno()).st_size
            self._bytes += size
            self._sealed.append(Segment(path, handle))

    def read(
        self, segment: Segment, max_events: int, weight: Callable[[bytes], int] | None = None
    ) -> tuple[list[bytes], int, int]:
        """Whole lines after ``segment.offset`` holding up to ``max_events`` events (at least
        one line; ``weight``: the events in a line, else 1): (lines, end offset, number of
        events in torn lines skipped). A torn line (no newline: a crash mid-write) ends the
        segment."""
        handle = segment.handle
        with self._lock:
            handle.seek(segment.offset)
            lines: list[bytes] = []
            end, torn, events = segment.offset, 0, 0
            while events < max_events:
                line = handle.readline()
                if not line:
                    break
                n = 1 if weight is None else weight(line)
                if not line.endswith(b"\n"):
                    end += len(line)
                    torn += n
                    break
                if lines and events + n > max_events:
                    break
                end += len(line)
                events += n
                lines.append(line)
            handle.seek(0, os.SEEK_END)
        return lines, end, torn

    def remove(self, segment: Segment) -> None:
        """Delete a segment the server has acknowledged entirely."""
        with self._lock:
            if segment in self._sealed:
                self._sealed.remove(segment)
            self._discard(segment)

    def _discard(self, segment: Segment) -> None:
        try:
            size = os.fstat(segment.handle.fileno()).st_size
            segment.path.unlink(missing_ok=True)
        except (OSError, ValueError):
            size = 0
        self._bytes = max(0, self._bytes - size)
        segment.handle.close()

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Release every segment (the files stay for the next client); an empty active
        segment is deleted. Appending afterwards opens a new segment."""
        with self._lock:
            if self._active is not None and self._active.handle.tell() == 0:
                self._discard(self._active)
            elif self._active is not None:
                self._active.handle.close()
            for segment in self._sealed:
                segment.handle.close()
            self._active, self._sealed, self._bytes = None, [], 0

    def abandon(self) -> None:
        """After ``fork``: forget the parent's segments without touching its files or locks."""
        self._lock = threading.Lock()
        for segment in (*self._sealed, *([self._active] if self._active else [])):
            with contextlib.suppress(OSError):
                segment.handle.close()
        self._active, self._sealed, self._bytes = None, [], 0
