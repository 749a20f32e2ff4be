"""``ref.analyze`` on data on disk (a file, a directory, a glob, a Dataset), read batch by batch:
the same Timeline, to the last statistic, as the in-memory analysis of the same rows, while
holding one chunk and one batch at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.analysis.test_reference import _frame
from watchkeeper import InputError, Reference, Timeline
from watchkeeper.analysis import sources, stream
from watchkeeper.analysis.stream import Meter
from watchkeeper.analysis.timeline import analyze
from watchkeeper.io import read_file

OPTIONS = {"target": "y", "prediction": "p", "scores": "s", "timestamp": "ts"}
CHUNKINGS: list[dict[str, Any]] = [
    {"chunk_size": 700},
    {"chunk_size": 10_000},  # one chunk, longer than the data
    {"chunk_number": 6},
    {"chunk_period": "1W"},
    {"chunk_period": "2D"},
]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches, spill buffer and open spill files far smaller than the data and the chunks, so
    that every cut falls inside a batch and the spill flushes and reopens files."""
    monkeypatch.setattr(sources, "BATCH_ROWS", 97)
    monkeypatch.setattr(stream, "SPILL_ROWS", 500)
    monkeypatch.setattr(stream, "SPILL_FILES", 2)


@pytest.fixture(scope="module")
def fitted() -> Reference:
    return Reference.fit(_frame(8000, 41), **OPTIONS)


def _production(*, shuffled: bool = False) -> pd.DataFrame:
    quiet, shifted = _frame(2500, 42), _frame(1500, 43, 0.6)
    shifted["ts"] = shifted["ts"] + pd.Timedelta(days=31)
    data = pd.concat([quiet, shifted], ignore_index=True)
    data.loc[3500:, "y"] = np.nan
    data.loc[100:110, "ts"] = data.loc[100, "ts"]  # ties: kept in row order within a period
    if shuffled:
        data = data.sample(frac=1.0, random_state=5).reset_index(drop=True)
    return data


def _parquet_dir(root: Path, data: pd.DataFrame, parts: int = 3) -> Path:
    root.mkdir()
    table = pa.Table.from_pandas(data, preserve_index=False)
    for i, piece in enumerate(np.array_split(np.arange(len(data)), parts)):
        pq.write_table(table.take(piece), root / f"part-{i}.parquet", row_group_size=333)
    (root / "_SUCCESS").write_text("")  # skipped, as Spark's marker
    return root


def _same_timeline(streamed: Timeline, in_memory: Timeline) -> None:
    assert streamed.to_dict() == in_memory.to_dict()
    for a, b in zip(streamed.reports, in_memory.reports, strict=True):
        left, right = a.to_dict(), b.to_dict()
        left.pop("created_at"), right.pop("created_at")
        assert left == right
    assert all(c.table is None for c in streamed.chunks)  # results kept, not rows


@pytest.mark.parametrize("shuffled", [False, True], ids=["time_ordered", "unordered"])
@pytest.mark.parametrize("chunking", CHUNKINGS, ids=lambda c: "-".join(map(str, c.items())))
def test_a_parquet_directory_streams_to_the_in_memory_timeline(
    fitted: Reference, tmp_path: Path, chunking: dict[str, Any], shuffled: bool
) -> None:
    root = _parquet_dir(tmp_path / "production", _production(shuffled=shuffled))
    whole = pa.concat_tables(pq.read_table(p) for p in sorted(root.glob("*.parquet")))
    meter = Meter()
    streamed = analyze(fitted, root, meter=meter, **chunking)
    _same_timeline(streamed, fitted.analyze(whole, **chunking))
    assert len(streamed) > 1 or chunking.get("chunk_size") == 10_000
    passes = 2 if "chunk_period" in chunking else 1
    assert meter.passes == passes  # chunk_number: the row count is Parquet metadata
    # unordered rows are spilled to disk by period, then read back one period at a time
    assert meter.spilled_rows == (len(whole) if shuffled and "chunk_period" in chunking else 0)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "tsv", "arrow", "arrow_stream", "glob"])
@pytest.mark.parametrize("chunking", [{"chunk_size": 900}, {"chunk_period": "1W"}])
def test_csv_arrow_and_glob_inputs_stream_like_the_file_read_whole(
    fitted: Reference, tmp_path: Path, kind: str, chunking: dict[str, Any]
) -> None:
    table = pa.Table.from_pandas(_production(shuffled=True), preserve_index=False)
    halves = [table.slice(0, 1800), table.slice(1800)]
    if kind in ("csv", "csv.gz", "tsv"):
        path = tmp_path / f"production.{kind}"
        delimiter = "\t" if kind == "tsv" else ","
        sink = (
            pa.CompressedOutputStream(str(path), "gzip")
            if kind == "csv.gz"
            else pa.OSFile(str(path), "wb")
        )
        with sink:
            pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter=delimiter))
        whole, data = read_file(path), str(path)
    elif kind == "glob":
        for i, half in enumerate(halves):
            pacsv.write_csv(half, tmp_path / f"day-{i}.csv")
        (tmp_path / "notes.txt").write_text("not data")
        whole = pa.concat_tables(read_file(tmp_path / f"day-{i}.csv") for i in range(2))
        data = str(tmp_path / "day-*.csv")
    else:
        path = tmp_path / "production.arrow"
        open_writer = pa.ipc.new_stream if kind == "arrow_stream" else pa.ipc.new_file
        with open_writer(path, table.schema) as writer:
            for half in halves:
                writer.write_table(half, max_chunksize=500)
        whole, data = read_file(path), str(path)
    _same_timeline(fitted.analyze(data, **chunking), fitted.analyze(whole, **chunking))


def test_a_pyarrow_dataset_streams_with_its_partition_columns(
    fitted: Reference, tmp_path: Path
) -> None:
    data = _production()
    data["region"] = np.where(np.arange(len(data)) % 3 == 0, "north", "south")
    ds.write_dataset(
        pa.Table.from_pandas(data, preserve_index=False),
        tmp_path / "lake",
        format="parquet",
        partitioning=["region"],
        partitioning_flavor="hive",
    )
    dataset = ds.dataset(tmp_path / "lake", format="parquet", partitioning="hive")
    whole = dataset.to_table()  # the fragments in order, the partition column filled in
    _same_timeline(fitted.analyze(dataset, chunk_size=800), fitted.analyze(whole, chunk_size=800))


def test_memory_stays_bounded_by_a_chunk_and_a_batch(fitted: Reference, tmp_path: Path) -> None:
    """Counted, not timed: the most rows held at once, whatever the data's size."""
    for name, shuffled in (("ordered", False), ("unordered", True)):
        copies = [_production(shuffled=shuffled) for _ in range(3)]
        for i, copy in enumerate(copies):  # three stretches of time, one after the other
            copy["ts"] += pd.Timedelta(days=70 * i)
        data = pd.concat(copies, ignore_index=True)
        root = _parquet_dir(tmp_path / name, data, parts=4)
        meter = Meter()
        timeline = analyze(fitted, root, chunk_size=400, meter=meter)
        assert meter.rows_read == len(data) and len(timeline) == 30
        assert meter.peak_rows <= 400 + 97  # a chunk and one batch, of 12,000 rows
        meter = Meter()
        timeline = analyze(fitted, root, chunk_period="1D", meter=meter)
        largest = max(c.rows for c in timeline.chunks)
        assert meter.rows_read == 2 * len(data)  # the timestamp pass, then the rows
        assert meter.spilled_rows == (len(data) if shuffled else 0)
        # a period and a batch; unordered rows: a period, or the spill buffer and a batch
        assert meter.peak_rows <= max(largest + 97, 500 + 97 if shuffled else 0)
        assert largest < len(data) / 10


def test_bad_input_is_an_input_error_naming_it(
    fitted: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match=r"file not found: .*nowhere\.parquet"):
        fitted.analyze(tmp_path / "nowhere.parquet", chunk_size=100)
    with pytest.raises(InputError, match=r"no file matches .*nothing-\*\.parquet"):
        fitted.analyze(str(tmp_path / "nothing-*.parquet"), chunk_size=100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no data files in the directory"):
        fitted.analyze(tmp_path / "empty", chunk_size=100)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"cannot read .*broken\.parquet as parquet"):
        fitted.analyze(broken, chunk_size=100)
    root = _parquet_dir(tmp_path / "lake", _production())
    pq.write_table(
        pa.Table.from_pandas(_production().drop(columns=["x"]), preserve_index=False),
        root / "part-3.parquet",
    )
    with pytest.raises(InputError, match=r"part-3\.parquet has no column 'x'"):
        fitted.analyze(root, chunk_size=100)
    (root / "part-3.parquet").unlink()
    (root / "part-9.csv").write_text("x\n1\n")
    with pytest.raises(InputError, match="mixes file formats"):
        fitted.analyze(root, chunk_size=100)
    late = tmp_path / "late.csv"  # a column whose type changes after the first block
    monkeypatch.setattr(sources, "CSV_BLOCK", 4096)  # types are inferred from the first block
    late.write_text("x\n" + "1\n" * 5000 + "oops\n")
    with pytest.raises(InputError, match=r"cannot read .*late\.csv: .*oops"):
        fitted.analyze(late, chunk_size=100_000)
    with pytest.raises(InputError, match="no timestamp column 'ts'"):
        fitted.analyze(late, chunk_period="1D")


def test_a_progress_bar_counts_the_rows_analysed(
    fitted: Reference,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws as on a terminal
    root = _parquet_dir(tmp_path / "lake", _production())
    fitted.analyze(root, chunk_size=1000, progress=True)
    assert "analyzing chunks (rows)" in capsys.readouterr().err
    fitted.analyze(_production(), chunk_number=2, progress=True)  # a frame: the same bar
    assert "4000/4000" in capsys.readouterr().err
    fitted.analyze(root, chunk_size=1000)  # small data, output not a terminal: no bar
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "chunking", [{"chunk_size": 100}, {"chunk_number": 1}, {"chunk_period": "1D"}]
)
def test_an_empty_file_gives_the_in_memory_timeline(
    fitted: Reference, tmp_path: Path, chunking: dict[str, Any]
) -> None:
    empty = pa.Table.from_pandas(_production(), preserve_index=False).slice(0, 0)
    pq.write_table(empty, tmp_path / "empty.parquet")
    streamed = fitted.analyze(tmp_path / "empty.parquet", **chunking)
    _same_timeline(streamed, fitted.analyze(empty, **chunking))
    assert [c.rows for c in streamed.chunks] == ([] if "chunk_period" in chunking else [0])
