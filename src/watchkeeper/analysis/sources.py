"""Datasets on disk, read batch by batch: what ``ref.analyze`` streams instead of loading.

:func:`open_source` accepts a Parquet, CSV/TSV (optionally compressed) or Arrow IPC file, a
directory of such files (read recursively, in path order; names starting with ``.`` or ``_``
are skipped, as Spark's ``_SUCCESS``), a glob (``"events/*.parquet"``, ``**`` recurses) or a
:class:`pyarrow.dataset.Dataset`; anything else is in-memory data (None). Every pass over a
:class:`Source` opens the files again and yields tables of at most ``batch_rows`` rows, each
cast to the first file's schema (a dataset's own schema for a Dataset) and with the view types
normalised as :func:`watchkeeper.io.to_table` does. Every file must have the first file's
columns: one that lacks a column, or has one more, is an :class:`InputError` naming both.

CSV types are inferred from the first block of each file (``CSV_BLOCK`` bytes) and fixed for
the rest; a later value that does not fit is an ``InputError`` naming the file.

Examples
--------
>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for i in range(3):
...     pq.write_table(pa.table({"x": [float(i)] * 5}), root / f"part-{i}.parquet")
>>> source = open_source(str(root), batch_rows=4)
>>> source.count_rows(), [t.num_rows for t in source.tables()]
(15, [4, 1, 4, 1, 4, 1])
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from pyarrow.fs import LocalFileSystem

from watchkeeper.errors import InputError
from watchkeeper.io import file_format, to_table

BATCH_ROWS = 65_536
CSV_BLOCK = 4 << 20  # bytes of a CSV file its column types are inferred from
_IGNORED = (".", "_")
_GLOB = set("*?[")
_LOCAL = LocalFileSystem()


@dataclass(frozen=True)
class _Part:
    """One file (or fragment of a Dataset): read with a scanner, or, for an Arrow IPC stream
    (which a Dataset cannot read), with ``pa.ipc.open_stream``."""

    label: str
    fragment: ds.Fragment | None = None
    stream: Path | None = None


class Source:
    """The record batches of a dataset on disk, read again on every pass."""

    def __init__(
        self, name: str, label: str, parts: list[_Part], schema: pa.Schema, batch_rows: int
    ) -> None:
        self.name, self.label, self.parts = name, label, parts
        self.schema, self.batch_rows = schema, batch_rows
        self.column_names: list[str] = to_table(schema.empty_table()).column_names

    def tables(self, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Tables of at most ``batch_rows`` rows, in file order then row order."""
        for part in self.parts:
            try:
                for batch in self._batches(part, columns):
                    if batch.num_rows:
                        yield to_table(pa.Table.from_batches([batch]))
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{self.name}: cannot read {part.label}: {exc}") from None

    def _batches(self, part: _Part, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        if part.fragment is not None:
            scanner = ds.Scanner.from_fragment(
                part.fragment,
                schema=self.schema,
                columns=None if columns is None else list(columns),
                batch_size=self.batch_rows,
                batch_readahead=2,
            )
            yield from scanner.to_batches()
            return
        assert part.stream is not None
        with pa.ipc.open_stream(part.stream) as reader:
            for read in reader:
                batch = read.select(self.schema.names).cast(self.schema)
                if columns is not None:
                    batch = batch.select(list(columns))
                for offset in range(0, batch.num_rows, self.batch_rows):
                    yield batch.slice(offset, self.batch_rows)

    def known_rows(self) -> int | None:
        """The row count when the files' metadata hold it (Parquet, Arrow IPC files), else
        None (CSV, IPC streams: it takes a pass)."""
        if any(
            p.fragment is None or isinstance(p.fragment.format, ds.CsvFileFormat)
            for p in self.parts
        ):
            return None
        return self.count_rows()

    def count_rows(self) -> int:
        """The number of rows: from the metadata where there is some, else by reading."""
        total = 0
        for part in self.parts:
            try:
                if part.fragment is not None:
                    total += ds.Scanner.from_fragment(
                        part.fragment, schema=self.schema
                    ).count_rows()
                else:
                    total += sum(t.num_rows for t in self._batches(part, [self.schema.names[0]]))
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{self.name}: cannot read {part.label}: {exc}") from None
        return total


def open_source(
    data: object, *, name: str = "data", batch_rows: int | None = None
) -> Source | None:
    """A :class:`Source` for a path, directory, glob or Dataset; None for in-memory data.
    ``batch_rows``: rows per batch read (default ``BATCH_ROWS``)."""
    batch_rows = batch_rows or BATCH_ROWS
    if isinstance(data, ds.Dataset):
        return _from_dataset(data, name, batch_rows)
    if not isinstance(data, str | os.PathLike):
        return None
    shown = os.fsdecode(data)
    if not shown:
        raise InputError(f"{name}: empty path")
    path = Path(shown).expanduser()
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(s.startswith(_IGNORED) for s in p.relative_to(path).parts)
        )
        if not files:
            raise InputError(f"{name}: no data files in the directory {shown}")
    elif path.exists():
        files = [path]
    elif _GLOB & set(shown):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(shown), recursive=True))
        files = [p for p in files if p.is_file()]
        if not files:
            raise InputError(f"{name}: no file matches {shown}")
    else:
        raise InputError(f"{name}: file not found: {shown}")
    return _from_files(files, shown, name, batch_rows)


def _format_of(path: Path, name: str) -> str:
    fmt = file_format(path)
    if fmt is None:
        raise InputError(
            f"{name}: cannot read {path}: unknown file extension {''.join(path.suffixes)!r}; "
            "expected .parquet/.pq, .csv/.tsv (optionally .gz/.bz2/.zst/.lz4) "
            "or .arrow/.feather/.ipc"
        )
    return fmt


def _file_format(fmt: str) -> ds.FileFormat:
    if fmt == "parquet":
        return ds.ParquetFileFormat()
    if fmt == "ipc":
        return ds.IpcFileFormat()
    from pyarrow import csv

    return ds.CsvFileFormat(
        parse_options=csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
        convert_options=csv.ConvertOptions(strings_can_be_null=True),
        read_options=csv.ReadOptions(block_size=CSV_BLOCK),
    )


def _is_ipc_stream(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(6) != b"ARROW1"


def _from_files(files: list[Path], label: str, name: str, batch_rows: int) -> Source:
    formats = {p: _format_of(p, name) for p in files}
    if len(set(formats.values())) > 1:
        kinds = ", ".join(sorted(set(formats.values())))
        raise InputError(f"{name}: {label} mixes file formats ({kinds}); use one format")
    fmt = formats[files[0]]
    parts: list[_Part] = []
    schemas: list[pa.Schema] = []
    for path in files:
        try:
            if fmt == "ipc" and _is_ipc_stream(path):
                with pa.ipc.open_stream(path) as reader:
                    schemas.append(reader.schema)
                parts.append(_Part(str(path), stream=path))
                continue
            fragment = _file_format(fmt).make_fragment(str(path.resolve()), filesystem=_LOCAL)
            schemas.append(fragment.physical_schema)
            parts.append(_Part(str(path), fragment=fragment))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{name}: cannot read {path} as {fmt}: {exc}") from None
    first = schemas[0]
    for part, schema in zip(parts[1:], schemas[1:], strict=True):
        _same_columns(name, part.label, set(schema.names), first.names, files[0])
    return Source(name, label, parts, first, batch_rows)


def _same_columns(name: str, label: str, have: set[str], want: list[str], first: Path) -> None:
    missing = [c for c in want if c not in have]
    if missing:
        raise InputError(f"{name}: {label} has no column {missing[0]!r} (that {first} has)")
    extra = sorted(have - set(want))
    if extra:
        raise InputError(f"{name}: {label} has a column {extra[0]!r} that {first} has not")


def _from_dataset(dataset: ds.Dataset, name: str, batch_rows: int) -> Source:
    partitioning = getattr(dataset, "partitioning", None)
    keys = set(partitioning.schema.names) if partitioning is not None else set()
    parts = []
    for i, fragment in enumerate(dataset.get_fragments()):
        label = str(getattr(fragment, "path", f"fragment {i}"))
        try:
            have = set(fragment.physical_schema.names)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{name}: cannot read {label}: {exc}") from None
        missing = [c for c in dataset.schema.names if c not in have and c not in keys]
        if missing:
            raise InputError(f"{name}: {label} has no column {missing[0]!r}")
        parts.append(_Part(label, fragment=fragment))
    return Source(name, "dataset", parts, dataset.schema, batch_rows)
