"""docs/analyze.md stays true: its Python blocks run in order, its command parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_docs import _bash_commands, _read, run_python_blocks
from watchkeeper import cli


def test_the_walkthrough_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_python_blocks("analyze.md", at_least=5)
    assert (tmp_path / "timeline.html").is_file() and (tmp_path / "reference.wk").is_dir()


def test_the_commands_parse() -> None:
    commands = list(_bash_commands(_read("analyze.md")))
    assert commands
    for words in commands:
        command = cli.main.commands[words[0]]
        command.make_context(words[0], words[1:])
