"""The spool: served events kept in an append-only file until the durable log holds them.

The serving endpoints answer before their events are committed to the log (``ingest.writer``
commits them in groups); what stands between the answer and the commit is this file. Each
request's events are one record, appended with one ``os.write`` before the answer and not
synced: the kernel holds the written bytes, so a process that crashes or is killed loses
none of them (a power loss may lose the last unsynced ones).

The spool is a directory of segments. The writer appends to its current segment; when it
takes the buffered events to commit them, it starts a new segment, and once their commit is
done it deletes the old one: a segment on disk holds events the log may not hold yet. A
process holds an exclusive ``flock`` on its segments, so at start-up only the segments of
processes that ended are replayed (:func:`orphans`) — into the log, which drops the ids it
holds already, so a segment replayed after its events were committed stores nothing twice.

A record: ``length`` (4 bytes), ``crc32`` of the body (4 bytes), the body: a JSON header
(model, version, flagged ids) and the events as an Arrow IPC stream. A record cut short (the
disk filled up mid-write) fails its check and ends the segment's replay: its request was
not answered 2xx.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from watchkeeper.ingest.events import from_ipc, to_ipc

log = logging.getLogger("watchkeeper.ingest")
HEAD = struct.Struct(">II")  # body length, crc32 of the body
SUFFIX = ".spool"


@dataclass(frozen=True)
class Record:
    """One request's accepted events, validated: one model version's rows."""

    model: str
    version: str
    table: pa.Table
    flagged: frozenset[str] = frozenset()  # ids accepted although they break a rule

    def encode(self) -> bytes:
        header = json.dumps(
            {"model": self.model, "version": self.version, "flagged": sorted(self.flagged)}
        ).encode()
        body = struct.pack(">I", len(header)) + header + to_ipc(self.table)
        return HEAD.pack(len(body), zlib.crc32(body)) + body

    @staticmethod
    def decode(body: bytes) -> Record:
        (size,) = struct.unpack_from(">I", body)
        header = json.loads(body[4 : 4 + size])
        table = from_ipc(body[4 + size :])
        return Record(header["model"], header["version"], table, frozenset(header["flagged"]))


class Segment:
    """A spool file this process appends to (locked while it is open)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd
        self.records = 0

    @classmethod
    def create(cls, directory: Path) -> Segment:
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}{SUFFIX}"
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(path, fd)

    def append(self, data: bytes) -> None:
        """Write one record, whole: a short write (a full disk) is an OSError, and the
        partial record is cut off again so the records after it stay readable."""
        size = os.fstat(self.fd).st_size
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                raise OSError(f"spool: wrote {written} of {len(data)} bytes (disk full?)")
        except OSError:
            os.ftruncate(self.fd, size)
            raise
        self.records += 1

    def close(self) -> None:
        os.close(self.fd)  # releases the lock

    def remove(self) -> None:
        """Delete the segment: the log holds its events."""
        self.path.unlink(missing_ok=True)
        self.close()


def orphans(directory: Path) -> list[Segment]:
    """The segments no live process holds (their writer ended before their events were
    committed, or after), oldest first, each locked by this process now."""
    found = []
    for path in sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            continue  # committed and deleted meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live process's
            continue
        found.append(Segment(path, fd))
    return found


def records(path: Path) -> Iterator[Record]:
    """The segment's records in order; a damaged or cut-short one ends it (logged)."""
    data = path.read_bytes()
    at = 0
    while at < len(data):
        if at + HEAD.size > len(data):
            log.warning("spool %s: a record cut short at byte %d is skipped", path.name, at)
            return
        size, crc = HEAD.unpack_from(data, at)
        body = data[at + HEAD.size : at + HEAD.size + size]
        if len(body) != size or zlib.crc32(body) != crc:
            log.warning("spool %s: a damaged record at byte %d ends the replay", path.name, at)
            return
        yield Record.decode(body)
        at += HEAD.size + size
