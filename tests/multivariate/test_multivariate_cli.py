"""``watchkeeper report --multivariate`` and ``--fail-on multivariate``, run as a process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.test_cli import run


def _write(path: Path, rng: np.random.Generator, n: int, rho: float) -> Path:
    xy = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], n)
    pq.write_table(pa.table({"income": xy[:, 0], "age": xy[:, 1], "z": rng.normal(size=n)}), path)
    return path


def test_the_cli_gates_on_a_joint_change(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = _write(tmp_path / "ref.parquet", rng, 4000, 0.8)
    flipped = _write(tmp_path / "flipped.parquet", rng, 1500, -0.8)
    same = _write(tmp_path / "same.parquet", rng, 1500, 0.8)
    gate = ("--fail-on", "multivariate")
    res = run("report", ref, flipped, *gate, "--multivariate", "all")
    assert res.returncode == 1, res.stderr
    assert "joint distribution: the joint distribution changed, mostly through" in res.stdout
    assert "classifier" in res.stdout and "pca" in res.stdout
    assert run("report", ref, flipped, "--fail-on", "drift", "--quiet").returncode == 0
    assert run("report", ref, same, *gate, "--quiet").returncode == 0
    off = run("report", ref, flipped, *gate, "--multivariate", "none")
    assert off.returncode == 0 and "joint distribution" not in off.stdout
    bad = run("report", ref, flipped, "--multivariate", "lda")
    assert bad.returncode == 2 and "lda" in bad.stderr
    timeline = run("analyze", ref, flipped, "--chunk-number", "1", *gate, "--quiet")
    assert timeline.returncode == 1, timeline.stderr
