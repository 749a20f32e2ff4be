"""The documentation keeps up with the code.

Each test fails when the code gains something the docs do not mention (a CLI command or
option, a `compare()` parameter, a drift method, a constant whose value changed) or when an
example in the docs stops working.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import watchkeeper
from watchkeeper import cli
from watchkeeper.report import Report
from watchkeeper.stats import drift

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
STATS = ROOT / "src" / "watchkeeper" / "stats"


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _mentions(text: str, token: str) -> bool:
    """``token`` appears as a whole word or option (not as part of a longer one)."""
    return re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text) is not None


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}[ \t]*\n(.*?)^```", text, flags=re.M | re.S)


# ----------------------------------------------------------------------------- CLI


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands(cli.main))


def test_cli_has_commands() -> None:
    assert {" ".join(p) for p, _ in COMMANDS} >= {"report", "example", "schema", "schema infer"}


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_cli_command_option_and_choice_is_documented(
    path: tuple[str, ...], command: click.Command
) -> None:
    text = _read("cli.md")
    assert f"watchkeeper {' '.join(path)}" in text, f"command {' '.join(path)!r} not in cli.md"
    for param in command.params:
        if isinstance(param, click.Argument):
            assert _mentions(text, (param.name or "").upper()), f"argument {param.name}"
            continue
        for opt in (*param.opts, *param.secondary_opts):
            assert _mentions(text, opt), f"{' '.join(path)}: option {opt} not in cli.md"
        if isinstance(param.type, click.Choice):
            for choice in param.type.choices:
                assert _mentions(text, str(choice)), f"{' '.join(path)}: choice {choice}"


def test_top_level_options_are_documented() -> None:
    text = _read("cli.md")
    for param in cli.main.params:
        for opt in param.opts:
            assert _mentions(text, opt), f"option {opt} of watchkeeper not in cli.md"
    for code in ("0", "1", "2"):
        assert re.search(rf"^\| {code} \|", text, flags=re.M), f"exit code {code} not in the table"


def _bash_commands(text: str) -> Iterator[list[str]]:
    for block in _code_blocks(text, "bash"):
        joined = re.sub(r"\\\n\s*", " ", block)
        for raw in joined.splitlines():
            line = raw.strip()
            start = line.find("watchkeeper ")
            if start < 0 or line.startswith("#"):
                continue
            words = shlex.split(line[start:].split(";")[0], comments=True)
            yield words[1:]


def test_cli_examples_parse() -> None:
    """Every `watchkeeper ...` line in a bash block of the docs names real options."""
    seen = 0
    for name in ("cli.md", "python-api.md", "architecture.md", "statistics.md"):
        for words in _bash_commands(_read(name)):
            command: click.Command = cli.main
            args = words
            while isinstance(command, click.Group) and args and args[0] in command.commands:
                command, args = command.commands[args[0]], args[1:]
            assert command is not cli.main, f"{name}: no command in {words}"
            command.make_context(command.name or "", list(args))  # raises on a bad option
            seen += 1
    assert seen >= 5


# ----------------------------------------------------------------------------- Python API


def test_every_compare_parameter_is_documented() -> None:
    text = _read("python-api.md")
    for name in inspect.signature(watchkeeper.compare).parameters:
        assert f"`{name}`" in text, f"compare() parameter {name!r} not in python-api.md"


def test_report_attributes_are_documented() -> None:
    text = _read("python-api.md")
    public = [n for n in vars(Report) if not n.startswith("_")]
    public += list(Report.__dataclass_fields__)
    for name in public:
        assert f"`{name}" in text, f"Report.{name} not in python-api.md"


def run_python_blocks(doc: str, at_least: int) -> None:
    """Run the Python blocks of ``docs/<doc>`` in order, in one namespace (in the current
    directory); there must be at least ``at_least`` of them."""
    blocks = _code_blocks(_read(doc), "python")
    assert len(blocks) >= at_least
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for i, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{doc} block {i}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{doc} block {i} failed: {exc!r}\n{block}")


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_python_blocks("python-api.md", at_least=5)


# ----------------------------------------------------------------------------- statistics


def test_every_drift_method_and_decision_is_documented() -> None:
    text = _read("statistics.md")
    for method in (*drift.NUMERIC_METHODS, *drift.CATEGORICAL_METHODS):
        assert f"### `{method}`" in text, f"drift method {method!r} has no section"
    for name in (*drift.DECISIONS, *drift.FIXED_THRESHOLDS):
        assert f"`{name}`" in text or f'`"{name}"`' in text


CONSTANT_ROW = re.compile(r"^\| `(watchkeeper\.[\w.]+)` \| `([^`]+)` \|", flags=re.M)


def test_documented_constants_match_the_code() -> None:
    rows = CONSTANT_ROW.findall(_read("statistics.md"))
    assert len(rows) >= 15
    for dotted, literal in rows:
        module, _, name = dotted.rpartition(".")
        actual = getattr(importlib.import_module(module), name)
        assert actual == ast.literal_eval(literal), f"{dotted} is {actual!r}, docs say {literal}"


# ----------------------------------------------------------------------------- architecture

ALLOWED_IN_STATS = {"numpy", "scipy", "pyarrow", "datasketches", "watchkeeper"}


def test_stats_core_imports_only_what_architecture_md_allows() -> None:
    assert "`tests/test_docs.py` checks this" in _read("architecture.md")
    for path in sorted(STATS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root == "watchkeeper":
                    assert name == "watchkeeper.errors" or name.startswith("watchkeeper.stats"), (
                        f"{path.name} imports {name}"
                    )
                else:
                    assert root in ALLOWED_IN_STATS or root in sys.stdlib_module_names, (
                        f"{path.name} imports {name}"
                    )


def test_docs_hold_no_absolute_paths_of_a_machine() -> None:
    for name in ("architecture.md", "statistics.md", "cli.md", "python-api.md"):
        text = _read(name)
        assert not re.search(r"(?<![\w./])/(home|Users|tmp|work|root)/", text), name


def test_the_readme_settings_file_example_loads(tmp_path: Path) -> None:
    """The YAML of the README's alerts section is a valid settings file (monitors checked
    against notifiers, fields validated)."""
    from watchkeeper.alerts.config import alert_config
    from watchkeeper.settings import load_settings

    text = (ROOT / "README.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "monitors:" in b]
    path = tmp_path / "watchkeeper.yaml"
    path.write_text(block)
    config = alert_config(load_settings(path, environ={}))
    assert [m.name for m in config.monitors] == ["accuracy-floor"]
    assert list(config.notifiers) == ["ops"]
