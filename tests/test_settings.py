"""Settings: file ← environment ← options, and a bad value names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.errors import InputError
from watchkeeper.settings import load_settings


def test_the_processor_setting_from_file_environment_and_options(tmp_path: Path) -> None:
    assert load_settings(environ={}).processor == "process"
    path = tmp_path / "wk.yaml"
    path.write_text("processor: thread\nport: 9001\n")
    assert load_settings(path, environ={}).processor == "thread"
    env = {"WATCHKEEPER_PROCESSOR": "process"}
    assert load_settings(path, environ=env).processor == "process"
    assert load_settings(path, environ=env, processor="thread").processor == "thread"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"processor": "fork"}, "setting processor: expected process or thread, got 'fork'"),
        ({"port": "0"}, "setting port: must be positive, got 0"),
        ({"port": "eighty"}, "setting port: invalid value 'eighty'"),
        ({"database_url": "mysql://x"}, "setting database_url: unsupported 'mysql://x'"),
    ],
)
def test_a_bad_value_names_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as err:
        load_settings(environ={}, **overrides)
    assert str(err.value).startswith(message)


def test_an_unknown_key_in_the_settings_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "wk.yaml"
    path.write_text("procesor: thread\n")
    with pytest.raises(InputError, match=r"unknown setting\(s\) \['procesor'\]"):
        load_settings(path, environ={})


def test_each_source_overrides_the_one_before(tmp_path: Path) -> None:
    """defaults ← file ← secrets directory ← environment ← options, one setting at a time."""
    path = tmp_path / "wk.yaml"
    path.write_text("port: 9001\nlog_level: debug\nhost: 0.0.0.0\ndatabase_url: sqlite:///a.db\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "database_url").write_text("postgresql://wk:pa55@db/wk\n")
    (secrets / "host").write_text("10.0.0.1")
    (secrets / "unrelated").write_text("ignored")
    env = {"WATCHKEEPER_HOST": "10.0.0.2", "WATCHKEEPER_PORT": "9002"}
    s = load_settings(path, environ=env, secrets_dir=secrets, port=9003)
    assert (s.log_level, s.database_url, s.host, s.port) == (
        "debug",
        "postgresql://wk:pa55@db/wk",
        "10.0.0.2",
        9003,
    )
    assert load_settings(environ={}).port == 8700


def test_nested_values_from_the_environment_merge_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wk.yaml"
    path.write_text("notifiers:\n  ops: {type: webhook, url: 'http://127.0.0.1:9/hook'}\n")
    env = {
        "WATCHKEEPER_NOTIFIERS__OPS__SECRET": "s3cret",
        "WATCHKEEPER_NOTIFIERS__AUDIT__TYPE": "log",
        "WATCHKEEPER_NOTIFIERS__AUDIT__SEND_RESOLVED": "false",
    }
    s = load_settings(path, environ=env)
    assert s.notifiers == {
        "ops": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"},
        "audit": {"type": "log", "send_resolved": False},
    }
    # a whole value as JSON text replaces a list; an empty one clears it
    assert load_settings(environ={"WATCHKEEPER_MONITORS": ""}).monitors == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WATCHKEEPER_REQUIRE_TOKENS": "maybe"}, "setting require_tokens: invalid value 'maybe'"),
        ({"WATCHKEEPER_RETENTION_DAYS": "-1"}, "setting retention_days: must be positive, got -1"),
        ({"WATCHKEEPER_DELIVERY_ATTEMPTS": "0"}, "setting delivery_attempts: must be positive"),
        ({"WATCHKEEPER_PUBLIC_URL": "wk.example.com"}, "setting public_url: expected an http(s)"),
        ({"WATCHKEEPER_NOTIFIERS": "[1]"}, "setting notifiers: expected a mapping"),
        ({"WATCHKEEPER_SECRETS_DIR": "no-such-dir"}, "secrets directory not found: no-such-dir"),
    ],
)
def test_a_bad_value_from_the_environment_names_the_setting(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError) as err:
        load_settings(environ=env)
    assert str(err.value).startswith(message)


def test_require_tokens_is_auto_unless_given() -> None:
    assert load_settings(environ={"WATCHKEEPER_REQUIRE_TOKENS": "auto"}).require_tokens is None
    assert load_settings(environ={}, host="0.0.0.0").tokens_required
    assert not load_settings(
        environ={"WATCHKEEPER_REQUIRE_TOKENS": "no"}, host="0.0.0.0"
    ).tokens_required


def test_settings_import_nothing_of_watchkeeper_but_the_errors() -> None:
    import ast
    import inspect

    import watchkeeper.settings

    tree = ast.parse(inspect.getsource(watchkeeper.settings))
    names = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    assert {n for n in names if n.startswith("watchkeeper")} == {"watchkeeper.errors"}


def test_serve_names_a_bad_monitor_before_it_claims_port_or_directory(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from watchkeeper.cli import main

    path = tmp_path / "wk.yaml"
    path.write_text(
        "monitors:\n  - {name: floor, model: churn, metric: acuracy, condition: '<= 0.8'}\n"
    )
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--data-dir", str(data)])
    assert result.exit_code != 0
    assert "monitor 'floor': metric: unknown metric 'acuracy'" in result.output
    assert not data.exists()
