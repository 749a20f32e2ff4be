"""Client counters: updated by the sender and the spiller, read as a frozen
:class:`ClientStats` snapshot."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientStats:
    """What the client has done since it started; every count but ``dead_letter_batches`` is
    in events.

    ``sent``: events put in a request (every attempt counts). ``acknowledged``: stored by the
    server (accepted predictions; matched, unmatched or late actuals). ``duplicates``: the
    server (or the client, inside one batch) saw the prediction id already. ``rejected``:
    refused by the server, per event (in its quarantine) or per batch (a 4xx other than
    401/403/408/413/429, or the same 5xx past the bound: see ``dead_lettered``).
    ``dead_lettered``: the events of those batches, moved to the dead-letter file
    (``Client.dead_letters()``), in ``dead_letter_batches`` batches. ``spooled``: written to
    the spool file. ``resent``: read back from the spool and delivered (the server answered
    for them). ``retries``: failed requests that will be retried. ``dropped``: lost on the
    client because neither the server nor the spool would take them (the spool full or
    unwritable, a value JSON cannot encode, a torn spool line, the dead-letter file full or
    unwritable). ``buffered``: waiting in memory now.
    ``last_error``: the latest problem, or None.
    """

    sent: int = 0
    acknowledged: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    dead_letter_batches: int = 0
    spooled: int = 0
    resent: int = 0
    retries: int = 0
    dropped: int = 0
    buffered: int = 0
    last_error: str | None = None


class Counters:
    """The mutable side of :class:`ClientStats`, safe to update from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = ClientStats()

    def add(self, *, error: str | None = None, **counts: int) -> None:
        with self._lock:
            v = self._values
            changes: dict[str, object] = {k: getattr(v, k) + n for k, n in counts.items() if n}
            if error is not None:
                changes["last_error"] = error
            if changes:
                self._values = dataclasses.replace(v, **changes)  # type: ignore[arg-type]

    def snapshot(self, buffered: int) -> ClientStats:
        with self._lock:
            return dataclasses.replace(self._values, buffered=buffered)
