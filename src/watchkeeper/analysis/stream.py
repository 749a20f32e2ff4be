"""Chunks cut from a :class:`~watchkeeper.analysis.sources.Source` as its batches arrive: the
streaming twins of :mod:`watchkeeper.analysis.chunks`, giving the very same chunks (rows, row
order, keys, spans) while holding one chunk and one batch at a time.

* ``chunk_size``: one pass; a chunk is cut as soon as its rows have arrived.
* ``chunk_number``: the row count first (Parquet and Arrow IPC metadata; a counting pass for
  CSV), then one pass as for ``chunk_size``.
* ``chunk_period``: a first pass reads the timestamp column alone: its missing times, and
  whether the periods come in order (each period's rows together, periods ascending; true of
  data sorted by time). If they do, a second pass cuts each period as it ends. If not, the
  second pass *spills*: each batch's rows go, by period, to temporary Arrow IPC files
  (compressed; at most ``SPILL_ROWS`` rows buffered, at most ``SPILL_FILES`` files open),
  then the periods are read back one at a time. Either way a period's rows are put in time
  order, ties in the data's row order (the stable sort of the in-memory path). The memory
  held is that of one period (a chunk must fit in memory) plus a batch; the disk needed for
  unsorted data is about that of the data, in a temporary directory removed at the end.

:class:`Meter` counts what was held and read, for tests and benchmarks.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.analysis.chunks import Chunk, parse_period, period_chunk, row_chunk, times_of
from watchkeeper.analysis.sources import Source
from watchkeeper.errors import InputError

SPILL_ROWS = 1_000_000
SPILL_FILES = 64


@dataclass
class Meter:
    """What a streamed analysis did: rows read over all passes, the most rows held at once
    (the chunk being cut, or the spill buffer), the passes over the data, the rows spilled."""

    rows_read: int = 0
    peak_rows: int = 0
    passes: int = 0
    spilled_rows: int = 0

    def hold(self, rows: int) -> None:
        self.peak_rows = max(self.peak_rows, rows)


class _Buffer:
    """Tables queued until a chunk's rows are complete."""

    def __init__(self, schema: pa.Schema, meter: Meter) -> None:
        self.schema, self.meter = schema, meter
        self.tables: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.rows += table.num_rows
        self.meter.hold(self.rows)

    def take(self, n: int) -> pa.Table:
        """The first ``n`` rows, removed from the buffer."""
        out, need = [], n
        while need:
            head = self.tables[0]
            if head.num_rows <= need:
                out.append(self.tables.pop(0))
                need -= head.num_rows
            else:
                out.append(head.slice(0, need))
                self.tables[0] = head.slice(need)
                need = 0
        self.rows -= n
        return pa.concat_tables(out) if out else self.schema.empty_table()


def _read(source: Source, meter: Meter, columns: list[str] | None = None) -> Iterator[pa.Table]:
    meter.passes += 1
    for table in source.tables(columns):
        meter.rows_read += table.num_rows
        yield table


def _empty(source: Source) -> pa.Table:
    from watchkeeper.io import to_table

    return to_table(source.schema.empty_table())


def _cut(
    source: Source, sizes: Iterable[int], timestamp: str | None, meter: Meter, *, tail: bool
) -> Iterator[Chunk]:
    """Chunks of the given sizes in row order; with ``tail``, the rows left as a last one."""
    buffer = _Buffer(_empty(source).schema, meter)
    wanted = iter(sizes)
    want = next(wanted, None)
    index = start = 0
    for table in _read(source, meter):
        buffer.add(table)
        while want is not None and buffer.rows >= want:
            yield row_chunk(index, start, buffer.take(want), timestamp)
            index, start, want = index + 1, start + want, next(wanted, None)
    if want is not None and buffer.rows >= want:  # a chunk of no rows (no data at all)
        yield row_chunk(index, start, buffer.take(want), timestamp)
        want = next(wanted, None)
    if tail and (buffer.rows or index == 0):
        yield row_chunk(index, start, buffer.take(buffer.rows), timestamp)
    elif not tail and (want is not None or buffer.rows):
        raise InputError(f"{source.name}: {source.label} changed while it was read")


def stream_by_size(
    source: Source, size: int, timestamp: str | None, meter: Meter
) -> Iterator[Chunk]:
    """:func:`~watchkeeper.analysis.chunks.by_size`, streamed."""
    if size < 1:
        raise InputError(f"chunk_size must be at least 1, got {size}")
    return _cut(source, itertools.repeat(size), timestamp, meter, tail=True)


def stream_by_number(
    source: Source, number: int, timestamp: str | None, meter: Meter, rows: int
) -> Iterator[Chunk]:
    """:func:`~watchkeeper.analysis.chunks.by_number`, streamed over ``rows`` rows."""
    if number < 1:
        raise InputError(f"chunk_number must be at least 1, got {number}")
    if number > max(rows, 1):
        raise InputError(f"chunk_number {number} is more than the data's {rows} rows")
    bounds = np.linspace(0, rows, number + 1).astype(int)
    return _cut(source, np.diff(bounds).tolist(), timestamp, meter, tail=False)


@dataclass(frozen=True)
class PeriodScan:
    """The first pass of ``chunk_period``: the rows, and whether the periods come in order."""

    rows: int
    in_order: bool


def scan_periods(source: Source, period: str, timestamp: str | None, meter: Meter) -> PeriodScan:
    """Read the timestamp column alone; refuse what the in-memory path refuses."""
    multiple, unit = parse_period(period)
    if timestamp is None:
        raise InputError("chunk_period needs a timestamp column: pass timestamp= to fit")
    if timestamp not in source.column_names:
        raise InputError(f"chunk_period: the data has no timestamp column {timestamp!r}")
    rows = nulls = 0
    in_order, last = True, None
    for table in _read(source, meter, [timestamp]):
        times = times_of(table, timestamp)
        assert times is not None
        rows += len(times)
        nulls += times.null_count
        if nulls or not in_order:
            continue
        codes = _codes(times, multiple, unit)
        in_order = bool((last is None or codes[0] >= last) and np.all(codes[1:] >= codes[:-1]))
        last = codes[-1]
    if nulls:
        raise InputError(f"timestamp column {timestamp!r}: {nulls} rows have no time")
    return PeriodScan(rows, in_order)


def _codes(times: pa.Array, multiple: int, unit: str) -> np.ndarray:
    return np.asarray(pc.floor_temporal(times, multiple, unit).cast(pa.int64()).to_numpy())


def stream_by_period(
    source: Source, period: str, timestamp: str, meter: Meter, scan: PeriodScan
) -> Iterator[Chunk]:
    """:func:`~watchkeeper.analysis.chunks.by_period`, streamed (see the module docstring)."""
    multiple, unit = parse_period(period)
    read = _in_order if scan.in_order else _spilled
    tables = read(source, timestamp, meter, multiple, unit)
    start = 0
    for index, table in enumerate(tables):
        yield period_chunk(index, start, table, timestamp, multiple, unit)
        start += table.num_rows


def _time_sorted(table: pa.Table, timestamp: str) -> pa.Table:
    """A period's rows (in the data's row order) in time order, ties in row order."""
    times = times_of(table, timestamp)
    assert times is not None
    values = times.cast(pa.int64()).to_numpy()
    if np.all(values[1:] >= values[:-1]):
        return table
    return table.combine_chunks().take(pc.array_sort_indices(times))


def _in_order(
    source: Source, timestamp: str, meter: Meter, multiple: int, unit: str
) -> Iterator[pa.Table]:
    """Each period's rows, time-sorted, when the periods come in order."""
    buffer = _Buffer(_empty(source).schema, meter)
    current = None
    for table in _read(source, meter):
        times = times_of(table, timestamp)
        assert times is not None
        codes = _codes(times, multiple, unit)
        cuts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(codes)]
        for a, b in itertools.pairwise(cuts):
            if current is not None and codes[a] != current:
                yield _time_sorted(buffer.take(buffer.rows), timestamp)
            current = codes[a]
            buffer.add(table.slice(a, b - a))
    if buffer.rows:
        yield _time_sorted(buffer.take(buffer.rows), timestamp)


class _Spill:
    """Rows partitioned by period into temporary IPC files (several per period when a file
    had to be closed to keep at most ``SPILL_FILES`` open). A period's rows are appended in
    the data's row order and its files read back in the order they were written, so a
    period comes back in row order."""

    def __init__(self, root: Path, meter: Meter) -> None:
        self.root, self.meter = root, meter
        self.pending: dict[int, list[pa.Table]] = {}
        self.rows = 0
        self.writers: OrderedDict[int, pa.ipc.RecordBatchFileWriter] = OrderedDict()
        self.files: dict[int, list[Path]] = {}
        self.options = pa.ipc.IpcWriteOptions(compression="lz4")

    def add(self, code: int, table: pa.Table) -> None:
        self.pending.setdefault(code, []).append(table)
        self.rows += table.num_rows
        self.meter.hold(self.rows)
        if self.rows >= SPILL_ROWS:
            self.flush()

    def flush(self) -> None:
        for code, tables in self.pending.items():
            writer = self.writers.pop(code, None) or self._open(code, tables[0].schema)
            writer.write_table(pa.concat_tables(tables))
            self.writers[code] = writer  # the most recently used last
            while len(self.writers) > SPILL_FILES:
                self.writers.popitem(last=False)[1].close()
        self.meter.spilled_rows += self.rows
        self.pending, self.rows = {}, 0

    def _open(self, code: int, schema: pa.Schema) -> pa.ipc.RecordBatchFileWriter:
        path = self.root / f"{code}-{len(self.files.get(code, []))}.arrow"
        self.files.setdefault(code, []).append(path)
        return pa.ipc.new_file(path, schema, options=self.options)

    def close(self) -> None:
        self.flush()
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()

    def period(self, code: int) -> pa.Table:
        tables = []
        for path in self.files[code]:
            with pa.ipc.open_file(path) as reader:
                tables.append(reader.read_all())
            path.unlink()
        return pa.concat_tables(tables)


def _spilled(
    source: Source, timestamp: str, meter: Meter, multiple: int, unit: str
) -> Iterator[pa.Table]:
    """Each period's rows, time-sorted (ties in row order), partitioned through the disk."""
    root = Path(tempfile.mkdtemp(prefix="watchkeeper-periods-"))
    try:
        spill = _Spill(root, meter)
        for batch in _read(source, meter):
            times = times_of(batch, timestamp)
            assert times is not None
            codes = _codes(times, multiple, unit)
            order = np.argsort(codes, kind="stable")  # by period, each in row order
            codes, table = codes[order], batch.take(pa.array(order))
            cuts = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(codes)]
            for a, b in itertools.pairwise(cuts):
                spill.add(int(codes[a]), table.slice(a, b - a))
        spill.close()
        for code in sorted(spill.files):
            period = spill.period(code)
            meter.hold(period.num_rows)
            yield _time_sorted(period, timestamp)
    finally:
        shutil.rmtree(root, ignore_errors=True)
