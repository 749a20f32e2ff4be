"""docs/multivariate.md: its example runs, and every test its table names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_docs import _read, run_python_blocks


def test_the_multivariate_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_python_blocks("multivariate.md", at_least=1)


def test_the_tests_the_page_names_exist() -> None:
    source = (Path(__file__).parent / "test_multivariate.py").read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_\w+)`", _read("multivariate.md")))
    assert len(named) >= 8
    assert not {n for n in named if f"def {n}(" not in source}
