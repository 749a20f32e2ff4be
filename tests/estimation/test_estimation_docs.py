"""docs/estimation.md stays true: its Python blocks run in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_docs import run_python_blocks


def test_the_walkthrough_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_python_blocks("estimation.md", at_least=3)
