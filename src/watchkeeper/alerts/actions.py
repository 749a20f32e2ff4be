"""Actions run when an alert fires (``actions:`` of a monitor), and durations in specs.

``{type: retrain, command: [...], timeout: 1h, cwd: ...}`` runs a command with the labelled
window (see :mod:`watchkeeper.alerts.retrain`); ``{type: webhook, url: ..., timeout: 30s}``
calls a URL instead. Commands are accepted only from the settings file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watchkeeper.errors import InputError

ACTION_TYPES = ("retrain", "webhook")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


@dataclass(frozen=True)
class Action:
    """Run when an alert of the monitor fires: a retraining command or a webhook call."""

    type: str
    command: tuple[str, ...] = ()
    url: str = ""
    timeout: float = 3600.0
    cwd: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.type == "retrain":
            out: dict[str, Any] = {"type": "retrain", "command": list(self.command)}
            if self.cwd is not None:
                out["cwd"] = self.cwd
        else:
            out = {"type": "webhook", "url": self.url}
        return {**out, "timeout": self.timeout}


def parse_duration(value: object, *, what: str = "duration") -> float:
    """Seconds from a number or ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"500ms"``.

    >>> parse_duration("10m"), parse_duration(30), parse_duration("1.5h")
    (600.0, 30.0, 5400.0)
    """
    if isinstance(value, bool):
        raise InputError(f"{what}: expected seconds or a duration like '10m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise InputError(f"{what}: expected seconds or a duration like '10m', got {value!r}")
        seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds < 0:
        raise InputError(f"{what}: must not be negative, got {value!r}")
    return seconds


def _fail(name: str, key: str, problem: str) -> InputError:
    return InputError(f"monitor {name!r}: {key}: {problem}")


def parse_action(name: str, i: int, value: object, allow_commands: bool) -> Action:
    key = f"actions[{i}]"
    if not isinstance(value, Mapping):
        raise _fail(name, key, f"expected a mapping with a type, got {value!r}")
    kind = value.get("type")
    if kind not in ACTION_TYPES:
        raise _fail(name, f"{key}.type", f"use one of {', '.join(ACTION_TYPES)}, got {kind!r}")
    allowed = {"type", "timeout"} | ({"command", "cwd"} if kind == "retrain" else {"url"})
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(name, key, f"unknown field(s) {unknown} for a {kind} action")
    default_timeout = 3600.0 if kind == "retrain" else 30.0
    try:
        timeout = parse_duration(value.get("timeout", default_timeout), what="timeout")
    except InputError as exc:
        raise _fail(name, f"{key}.timeout", str(exc).split(": ", 1)[1]) from None
    if timeout <= 0:
        raise _fail(name, f"{key}.timeout", "must be positive")
    if kind == "webhook":
        url = value.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _fail(name, f"{key}.url", f"expected an http(s) URL, got {url!r}")
        return Action("webhook", url=url, timeout=timeout)
    if not allow_commands:
        raise _fail(
            name,
            key,
            "retrain commands can be declared only in the settings file, not through the API "
            "(a command runs on the server); use a webhook action instead",
        )
    command = value.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in command)
    ):
        raise _fail(
            name, f"{key}.command", f"expected a non-empty list of arguments, got {command!r}"
        )
    cwd = value.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise _fail(name, f"{key}.cwd", f"expected a directory path, got {cwd!r}")
    return Action("retrain", command=tuple(str(c) for c in command), timeout=timeout, cwd=cwd)
