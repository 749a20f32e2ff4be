"""``watchkeeper analyze`` in a real subprocess: the files it writes, its exit codes, and one
readable line for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.analysis.test_reference import _frame
from tests.test_cli import run
from watchkeeper import Reference


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("analyze")
    ref, quiet, shifted = _frame(6000, 31), _frame(2000, 32), _frame(1000, 33, 0.6)
    shifted["ts"] = shifted["ts"] + pd.Timedelta(days=31)
    ref.to_parquet(root / "reference.parquet")
    pd.concat([quiet, shifted], ignore_index=True).to_parquet(root / "production.parquet")
    quiet.to_parquet(root / "quiet.parquet")
    return root / "reference.parquet", root / "production.parquet", root / "quiet.parquet"


def test_analyze_writes_the_timeline_and_gates(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ref, prod, _ = files
    html, out = tmp_path / "timeline.html", tmp_path / "timeline.json"
    res = run(
        "analyze", ref, prod, "--chunk-size", "1000", "--target", "y", "--prediction", "p",
        "--timestamp", "ts", "-o", html, "--json", out, "--fail-on", "drift",
    )  # fmt: skip
    assert res.returncode == 1, res.stderr  # the shifted chunk trips the gate
    assert "[2000:3000]" in res.stdout and "timeline written to" in res.stdout
    assert "Plotly.newPlot" in html.read_text(encoding="utf-8")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [c["rows"] for c in data["chunks"]] == [1000, 1000, 1000]
    assert data["chunks"][2]["summary"]["drifted_columns"][0] == "x"
    # the same numbers as the library
    fitted = Reference.fit(pd.read_parquet(ref), target="y", prediction="p", timestamp="ts")
    timeline = fitted.analyze(pd.read_parquet(prod), chunk_size=1000)
    assert data == json.loads(json.dumps(timeline.to_dict()))


def test_analyze_passes_on_quiet_data_and_reads_a_saved_reference(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ref, _, quiet = files
    saved = Reference.fit(pd.read_parquet(ref), timestamp="ts").save(tmp_path / "ref")
    res = run("analyze", saved, quiet, "--chunk-period", "1W", "--fail-on", "dataset-drift")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2024-01-01T00:00:00" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk-size", "10", "--chunk-number", "2"], "exactly one of"),
        (["--chunk-period", "fortnight", "--timestamp", "ts"], "chunk_period 'fortnight'"),
        (["--chunk-period", "1D", "--timestamp", "x"], "timestamp column 'x'"),
        (["--chunk-number", "3", "--target", "nope"], "'nope'"),
        (["--chunk-number", "3", "-o", "timeline.txt"], "use a .html or .json"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(
    files: tuple[Path, Path, Path], args: list[str], message: str
) -> None:
    ref, prod, _ = files
    res = run("analyze", ref, prod, *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr


def test_analyze_streams_a_directory_and_a_glob(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ref, prod, _ = files
    lake = tmp_path / "lake"
    lake.mkdir()
    production = pd.read_parquet(prod)
    for i, start in enumerate(range(0, len(production), 1000)):
        production.iloc[start : start + 1000].to_parquet(lake / f"day-{i}.parquet")
    fitted = Reference.fit(pd.read_parquet(ref), timestamp="ts")
    expected = json.loads(json.dumps(fitted.analyze(production, chunk_period="1W").to_dict()))
    for data in (lake, lake / "day-*.parquet"):
        out = tmp_path / "timeline.json"
        res = run("analyze", ref, data, "--chunk-period", "1W", "--timestamp", "ts", "-o", out)
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(out.read_text(encoding="utf-8")) == expected


def test_bad_data_paths_get_one_line_and_exit_2(
    files: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ref, prod, _ = files
    lake = tmp_path / "lake"
    lake.mkdir()
    pd.read_parquet(prod).to_parquet(lake / "a.parquet")
    pd.read_parquet(prod).drop(columns=["z"]).to_parquet(lake / "b.parquet")
    for data, message in (
        (lake, "b.parquet has no column 'z'"),
        (tmp_path / "nowhere", "file not found"),
        (tmp_path / "none-*.parquet", "no file matches"),
    ):
        res = run("analyze", ref, data, "--chunk-size", "500")
        assert res.returncode == 2, res.stdout + res.stderr
        assert message in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
