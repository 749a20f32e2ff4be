"""Which prediction ids has this process seen? A Bloom filter answers "certainly not" for
almost every new id, so accepting a batch needs no index lookup in the common case.

The ingest path checks a batch's ids here; only the ids the filter *may* have seen (all of a
retried batch, about 1 % of new ones) are looked up exactly, in the stored index and among the
ids of batches not indexed yet. The filter grows by adding a layer twice the size of the last
when the last is full, so the false-positive rate stays near its target however many ids come.
It lives in memory and is filled again from the index when the service starts. Python's string
hash is salted per process; the filter never leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PROBES = 4  # bits per id; with 10 bits per id, about 1 % false positives


def _hashes(ids: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)).view(np.uint64)


class _Layer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.bits = 1 << max(10, int(np.ceil(np.log2(capacity * 10))))
        self.array = np.zeros(self.bits // 8, dtype=np.uint8)
        self.count = 0

    def _positions(self, h: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        step = (h * _GOLDEN) ^ (h >> np.uint64(29)) | np.uint64(1)
        probes = np.arange(_PROBES, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            return (h[None, :] + probes * step[None, :]) & np.uint64(self.bits - 1)

    def add(self, h: np.ndarray[Any, Any]) -> None:
        pos = np.sort(self._positions(h).ravel())
        byte = pos >> np.uint64(3)
        bit = (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8)).astype(np.uint8)
        first = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
        self.array[byte[first]] |= np.bitwise_or.reduceat(bit, first)  # bits sharing a byte
        self.count += len(h)

    def may_contain(self, h: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        pos = self._positions(h)
        got = (self.array[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1
        return np.asarray(got.all(axis=0), dtype=bool)


class IdFilter:
    """A growing Bloom filter of ids: ``may_contain`` is never false for an added id."""

    def __init__(self, capacity: int = 1 << 20) -> None:
        self._layers = [_Layer(capacity)]

    def __len__(self) -> int:
        return sum(layer.count for layer in self._layers)

    def add(self, ids: Sequence[str]) -> None:
        h = _hashes(ids)
        while len(h):
            last = self._layers[-1]
            room = last.capacity - last.count
            if room <= 0:
                self._layers.append(_Layer(last.capacity * 2))
                continue
            last.add(h[:room])
            h = h[room:]

    def add_all(self, chunks: Iterable[Sequence[str]]) -> None:
        for chunk in chunks:
            self.add(chunk)

    def may_contain(self, ids: Sequence[str]) -> np.ndarray[Any, Any]:
        h = _hashes(ids)
        found = np.zeros(len(h), dtype=bool)
        for layer in self._layers:
            if layer.count:
                found |= layer.may_contain(h)
        return found
