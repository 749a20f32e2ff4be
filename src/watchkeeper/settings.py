"""Service settings: defaults, then a settings file (YAML or JSON), then ``WATCHKEEPER_*``
environment variables, then explicit arguments. Read once; every error names the key and value.

Every field is documented in ``docs/service.md``; a test fails when one is not.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.errors import InputError

ENV_PREFIX = "WATCHKEEPER_"


@dataclass
class Settings:
    """Everything ``watchkeeper serve`` can be told."""

    data_dir: Path = Path("watchkeeper-data")
    database_url: str = ""  # empty: SQLite file ``<data_dir>/state.db``
    host: str = "127.0.0.1"
    port: int = 8700
    max_body_bytes: int = 64 * 1024 * 1024
    max_batch_events: int = 100_000
    max_pending_events: int = 2_000_000
    label_horizon_days: float = 14.0
    window_seconds: int = 3600
    evaluation_interval_seconds: float = 5.0
    retention_days: float = 30.0
    require_tokens: bool | None = None  # None: required when binding to a non-loopback host
    log_level: str = "info"
    processor: str = "process"  # process: a child process works the log; thread: in the server
    public_url: str = ""  # base URL of links in alerts, e.g. https://wk.example.com
    monitors: list[Any] = field(default_factory=list)  # alerts.monitors.Monitor, validated
    notifiers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → its config
    delivery_attempts: int = 8
    delivery_backoff_seconds: float = 1.0
    delivery_timeout_seconds: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:  # store.state.create_engine picks the driver
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def tokens_required(self) -> bool:
        if self.require_tokens is not None:
            return self.require_tokens
        return self.host not in ("127.0.0.1", "localhost", "::1")


def _coerce(name: str, kind: Any, raw: object) -> object:
    text = str(raw).strip()
    try:
        if kind in (int, "int"):
            return int(text)
        if kind in (float, "float"):
            return float(text)
        if kind in (Path, "Path"):
            return Path(text)
        if kind in ("bool | None", bool, "bool"):
            if text.lower() in ("", "none", "auto"):
                return None
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
    except ValueError as exc:
        raise InputError(f"setting {name}: invalid value {raw!r} ({exc})") from None
    return text


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Settings from defaults ← file ← environment ← ``overrides`` (None values ignored)."""
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    values: dict[str, object] = {}
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = environ[ENV_PREFIX + "CONFIG"]
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"settings file not found: {p}")
        try:
            data = (json.loads if p.suffix == ".json" else yaml.safe_load)(p.read_text()) or {}
        except (ValueError, yaml.YAMLError) as exc:
            raise InputError(f"settings file {p}: cannot parse: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"settings file {p}: expected a mapping at the top level")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError(f"settings file {p}: unknown setting(s) {unknown}")
        values.update({k: v for k, v in data.items() if k in known})
    for name in known:
        env = environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"unknown setting(s) {unknown}")
    converted = {
        k: _structured(k, v) if k in STRUCTURED else _coerce(k, known[k].type, v)
        for k, v in values.items()
    }
    settings = dataclasses.replace(Settings(), **converted)  # type: ignore[arg-type]
    _check(settings)
    _check_alerting(settings)
    return settings


STRUCTURED = ("monitors", "notifiers")  # YAML/JSON structures; from the environment: JSON text


def _structured(name: str, raw: object) -> object:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise InputError(f"setting {name}: expected JSON ({exc})") from None
    if raw is None:
        return [] if name == "monitors" else {}
    return raw


def _check_alerting(s: Settings) -> None:
    """Notifiers are built once to check them (no network); monitors are parsed, their
    ``notify`` names checked against the notifiers."""
    from watchkeeper.alerts.monitors import Monitor, parse_monitors
    from watchkeeper.alerts.notifiers import build_notifiers

    if not isinstance(s.notifiers, dict):
        raise InputError(
            f"setting notifiers: expected a mapping of name: {{type: ..., ...}}, "
            f"got {type(s.notifiers).__name__}"
        )
    names = list(build_notifiers(s.notifiers))
    if not isinstance(s.monitors, list) or not all(isinstance(m, Monitor) for m in s.monitors):
        s.monitors = parse_monitors(s.monitors, notifiers=names, source="config")
    for name in ("delivery_attempts",):
        if getattr(s, name) <= 0:
            raise InputError(f"setting {name}: must be positive, got {getattr(s, name)}")
    for name in ("delivery_backoff_seconds", "delivery_timeout_seconds"):
        if getattr(s, name) <= 0:
            raise InputError(f"setting {name}: must be positive, got {getattr(s, name)}")
    if s.public_url and not s.public_url.startswith(("http://", "https://")):
        raise InputError(f"setting public_url: expected an http(s) URL, got {s.public_url!r}")


def _check(s: Settings) -> None:
    for name in (
        "port",
        "max_body_bytes",
        "max_batch_events",
        "max_pending_events",
        "window_seconds",
    ):
        value = getattr(s, name)
        if value <= 0:
            raise InputError(f"setting {name}: must be positive, got {value}")
    if s.processor not in ("process", "thread"):
        raise InputError(f"setting processor: expected process or thread, got {s.processor!r}")
    if s.label_horizon_days <= 0 or s.retention_days <= 0:
        raise InputError("settings label_horizon_days and retention_days must be positive")
    if s.database_url and not s.database_url.startswith(("sqlite", "postgresql")):
        raise InputError(
            f"setting database_url: unsupported {s.database_url!r}; use sqlite:// or postgresql://"
        )
