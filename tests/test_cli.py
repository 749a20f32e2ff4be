"""The `watchkeeper` command, run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from watchkeeper.examples import churn_example


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("watchkeeper")
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    return subprocess.run(
        [*cmd, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("data")
    ref, cur = churn_example(reference_rows=10_000, current_rows=4_000)
    pq.write_table(ref, d / "ref.parquet")
    pq.write_table(cur, d / "cur.parquet")
    return d / "ref.parquet", d / "cur.parquet"


def test_report_writes_html_and_prints_summary(files: tuple[Path, Path], tmp_path: Path) -> None:
    ref, cur = files
    out = tmp_path / "out.html"
    res = run(
        "report", ref, cur, "-o", out, "--target", "churned", "--prediction", "churn_predicted"
    )
    assert res.returncode == 0, res.stderr
    assert out.exists() and out.stat().st_size > 100_000
    assert "columns drifted" in res.stdout and "income" in res.stdout


def test_report_json_output(files: tuple[Path, Path], tmp_path: Path) -> None:
    ref, cur = files
    out = tmp_path / "out.json"
    res = run("report", ref, cur, "-o", out, "--quiet")
    assert res.returncode == 0 and res.stdout == ""
    data = json.loads(out.read_text())
    assert data["drift"]["income"]["drifted"] is True


def test_fail_on_drift_exits_1_and_passes_when_clean(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    ref, cur = files
    assert run("report", ref, cur, "--fail-on", "drift", "--quiet").returncode == 1
    assert run("report", ref, ref, "--fail-on", "drift", "--quiet").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "missing.parquet", "{ref}"], "not found"),
        (["report", "{bad}", "{ref}"], "bad.parquet"),
        (
            ["report", "{ref}", "{cur}", "--target", "nope", "--prediction", "churn_predicted"],
            "nope",
        ),
        (["report", "{ref}", "{cur}", "--column", "nope"], "nope"),
        (["report", "{ref}", "{cur}", "--method", "bogus"], "bogus"),
        (["report", "{ref}", "{cur}", "-o", "out.txt"], "out.txt"),
    ],
)
def test_bad_input_exits_2_with_one_readable_line(
    files: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    ref, cur = files
    bad = tmp_path / "bad.parquet"
    bad.write_text("this is not parquet")
    filled = [a.format(ref=ref, cur=cur, bad=bad) for a in args]
    res = run(*filled, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_csv_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, shift in (("a.csv", 0.0), ("b.csv", 1.0)):
        pa.csv.write_csv(pa.table({"x": rng.normal(shift, 1, 2000)}), tmp_path / name)
    res = run("report", tmp_path / "a.csv", tmp_path / "b.csv", "--fail-on", "drift")
    assert res.returncode == 1 and "x" in res.stdout


def test_example_command_writes_data_and_report(tmp_path: Path) -> None:
    res = run("example", "--out", tmp_path / "ex", "--rows", "5000")
    assert res.returncode == 0, res.stderr
    for name in ("reference.parquet", "current.parquet", "report.html", "report.json"):
        assert (tmp_path / "ex" / name).exists()
    data = json.loads((tmp_path / "ex" / "report.json").read_text())
    assert set(data["summary"]["drifted_columns"]) == {"income", "credit_score", "country", "plan"}


def test_schema_infer_then_use(files: tuple[Path, Path], tmp_path: Path) -> None:
    ref, cur = files
    schema = tmp_path / "schema.yaml"
    assert run("schema", "infer", ref, "-o", schema, "--target", "churned").returncode == 0
    assert "churned" in schema.read_text()
    assert run("report", ref, cur, "--schema", schema, "--quiet").returncode == 0


def test_usage_errors_are_one_line(files: tuple[Path, Path]) -> None:
    ref, cur = files
    for args in (["--bogus"], ["report", ref, cur, "--threshold", "0.2"]):
        res = run(*args)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert (
            res.returncode == 2 and len(lines) == 1 and lines[0].startswith("watchkeeper: error:")
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_demo_closes_the_loop(tmp_path: Path) -> None:
    """The README's main command with short windows: the served model degrades, the alert on
    the estimated accuracy fires before the labels and the one on accuracy after them, the
    retraining job's model goes into shadow, the verdict promotes it and accuracy recovers —
    each step once, in order, as a service on the demo's data tells it after."""
    import httpx

    data = tmp_path / "demo"
    res = run(
        "demo", "--data-dir", data, "--port", str(free_port()), "--window-seconds", "6",
        "--minutes", "5", "--exit",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "the loop, step by step" in res.stderr and "\nrecovered\n" in res.stderr

    port = free_port()
    exe = shutil.which("watchkeeper")
    cmd = [exe] if exe else [sys.executable, "-m", "watchkeeper.cli"]
    serve = subprocess.Popen(
        [*cmd, "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        for _ in range(300):
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        events = client.get("/v1/models/churn/history", params={"limit": 1000}).json()["events"]
        verdicts = client.get("/v1/models/churn/verdicts").json()["verdicts"]
        [job] = client.get("/v1/retrain-jobs").json()["jobs"]

        def accuracy(version: str) -> list[dict[str, Any]]:
            r = client.get(
                "/v1/models/churn/metrics", params={"metric": "accuracy", "version": version}
            )
            return [p for p in r.json()["points"] if p["value"] is not None]

        estimated = [
            e
            for e in events
            if (e.get("detail") or {}).get("monitor") == "estimated-accuracy-floor"
        ]
        events = [e for e in events if e not in estimated]
        kinds = [e["kind"] for e in reversed(events)]  # oldest first
        steps = ["alert_firing", "action_started", "shadow_started", "action_succeeded",
                 "promoted"]  # fmt: skip
        for kind in steps:
            assert kinds.count(kind) == 1, (kind, kinds)
        assert [k for k in kinds if k in steps] == steps
        # verdicts come as labels arrive: any before the last kept collecting
        assert verdicts[0]["decision"] == "promote", verdicts
        assert {v["decision"] for v in verdicts[1:]} <= {"collecting"}
        judged = [i for i, k in enumerate(kinds) if k == "verdict"]
        assert kinds.index("shadow_started") < judged[0] and judged[-1] < kinds.index("promoted")

        shadow = next(e for e in events if e["kind"] == "shadow_started")
        promoted = next(e for e in events if e["kind"] == "promoted")
        assert shadow["version"] == promoted["version"] == f"retrain-{job['id']}"
        assert promoted["detail"]["previous"] == "v1"
        assert job["status"] == "succeeded" and job["rows"] > 0
        evidence = verdicts[0]["evidence"]
        assert evidence["challenger"] > evidence["champion"] and evidence["p_value"] < 0.05

        fired = next(e for e in events if e["kind"] == "alert_firing")
        # the estimate fired first, on the same window, without labels
        [on_estimate] = [e for e in estimated if e["kind"] == "alert_firing"]
        assert on_estimate["at"] < fired["at"] and on_estimate["version"] == "v1"
        assert on_estimate["detail"]["metric"] == "estimated_accuracy"
        assert "before the labels: the window" in res.stderr
        window = int(promoted["at"]) // 6 * 6 + 6  # the first full window after the promotion
        after = [p["value"] for p in accuracy(promoted["version"]) if p["window_start"] >= window]
        assert after, accuracy(promoted["version"])
        assert min(after) > fired["detail"]["value"] + 0.1, (after, fired)
        # the champion answers the traffic that followed: no window of v1 after it
        assert all(p["window_start"] < window for p in accuracy("v1"))
        client.close()
    finally:
        serve.terminate()
        serve.wait(timeout=30)


# --------------------------------------------------------------------------- the CI gate


@pytest.fixture(scope="module")
def gate_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gate")
    rng = np.random.default_rng(0)
    ref = pa.table({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    cur = pa.table({"x": rng.normal(size=800), "c": rng.choice(["a", "b"], 800)})
    pa.csv.write_csv(ref, d / "ref.csv")
    pa.csv.write_csv(cur, d / "cur.csv")
    pa.csv.write_csv(ref.slice(0, 0), d / "header_only.csv")
    pa.csv.write_csv(cur.drop(["x"]), d / "no_x.csv")
    return d


@pytest.mark.parametrize("fail_on", ["drift", "dataset-drift"])
def test_the_drift_gate_never_passes_on_data_it_could_not_check(
    gate_files: Path, fail_on: str
) -> None:
    d = gate_files
    assert run("report", d / "ref.csv", d / "cur.csv", "--fail-on", fail_on).returncode == 0
    for current, why in (
        ("header_only.csv", "no values in the current data): x, c"),
        ("no_x.csv", "missing from the current data): x"),
    ):
        res = run("report", d / "ref.csv", d / current, "--fail-on", fail_on)
        assert res.returncode == 1, (current, res.stdout, res.stderr)
        assert f"drift not checked ({why}" in res.stdout
        # without a gate the report is only a report
        assert run("report", d / "ref.csv", d / current, "--quiet").returncode == 0


def test_output_that_is_not_a_terminal_is_not_wrapped(tmp_path: Path) -> None:
    """Into a file or a pipe, a long column name and a long path stay whole on one line."""
    name = "a_feature_with_a_long_descriptive_name_" * 6
    rng = np.random.default_rng(0)
    for file, shift in (("a.csv", 0.0), ("b.csv", 1.0)):
        pa.csv.write_csv(pa.table({name: rng.normal(shift, 1, 1000)}), tmp_path / file)
    out_dir = tmp_path.joinpath(*["a_long_directory_name_" * 4] * 3)
    out_dir.mkdir(parents=True)
    out = out_dir / "report.json"
    exe = shutil.which("watchkeeper") or "watchkeeper"
    res = subprocess.run(
        [exe, "report", tmp_path / "a.csv", tmp_path / "b.csv", "-o", out],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},  # as in CI
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert f"report written to {out}\n" in res.stdout
    row = next(line for line in res.stdout.splitlines() if name in line)
    assert "jensenshannon" not in row and "ks" in row and "…" not in res.stdout


def test_long_names_fold_in_a_narrow_terminal_table(gate_files: Path) -> None:
    """In a terminal narrower than the table, the column name wraps in its cell and no value
    is cut: the method's name stays whole."""
    import io

    import pandas as pd
    from rich.console import Console

    from watchkeeper.cli.report import _print_summary
    from watchkeeper.report import compare

    name = "customer_lifetime_value_in_euros_last_90_days"
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({name: rng.normal(size=500), "c": rng.choice(["a", "bb"], 500)})
    report = compare(ref, ref.assign(**{name: ref[name] + 1}))
    buffer = io.StringIO()
    _print_summary(report, Console(file=buffer, width=80, highlight=False))
    text = buffer.getvalue()
    assert "…" not in text and "jensenshannon" in text
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert name in "".join(cells)


def test_output_console_wraps_nothing_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """The console of `report`, `example` and `demo`: a URL longer than any terminal stays on
    one line when the output is captured (as in CI), on standard output and standard error."""
    from watchkeeper.progress import output_console

    url = "http://127.0.0.1:8700/models/" + "a_long_model_name_" * 12 + "/versions/v1"
    output_console().print(f"dashboard: {url}")
    output_console(stderr=True).print(f"  {'dashboard':<20} {url}")
    out, err = capsys.readouterr()
    assert out == f"dashboard: {url}\n"
    assert err == f"  {'dashboard':<20} {url}\n"
