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
