"""Service settings on pydantic-settings: defaults ← a settings file (YAML or JSON) ← a secrets
directory ← ``WATCHKEEPER_*`` environment variables ← explicit arguments. Read once; every error
names the key and the value.

Nested values come from the environment with ``__`` between the keys
(``WATCHKEEPER_NOTIFIERS__OPS__SECRET``) and from a secrets directory, one file per value named
the same way without the prefix (``notifiers__ops__secret``). Mappings merge key by key across
the sources; any other value is replaced whole.

This module holds raw configuration only: ``monitors`` and ``notifiers`` stay plain lists and
mappings, parsed and checked by :func:`watchkeeper.alerts.config.alert_config`. It imports
nothing from watchkeeper except the errors. Every field is documented in ``docs/service.md``;
a test fails when one is not.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from watchkeeper.errors import InputError

ENV_PREFIX = "WATCHKEEPER_"
NESTED_DELIMITER = "__"
POSITIVE = (
    "port",
    "lease_seconds",
    "max_body_bytes",
    "max_batch_events",
    "max_pending_events",
    "processor_max_attempts",
    "window_seconds",
    "label_horizon_days",
    "retention_days",
    "max_event_age_days",
    "max_event_lead_seconds",
    "max_latency_ms",
    "delivery_attempts",
    "delivery_backoff_seconds",
    "delivery_timeout_seconds",
    "session_hours",
    "auth_failure_limit",
    "auth_failure_window_seconds",
)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
NAME_LISTS = ("allowed_hosts", "allowed_origins")  # JSON or comma-separated from the env


class Settings(BaseSettings):
    """Everything ``watchkeeper serve`` can be told.

    ``Settings(...)`` validates the given values only; :func:`load_settings` reads the file,
    the secrets directory and the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        validate_default=False,
    )

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
    # plausibility (ingest.bounds): an event's time within this many days before / seconds
    # after it is received, its latency at most this many milliseconds
    max_event_age_days: float = 3650.0
    max_event_lead_seconds: float = 86400.0
    max_latency_ms: float = 86_400_000.0
    require_tokens: bool | None = None  # None: required when binding to a non-loopback host
    log_level: str = "info"
    processor: str = "process"  # process: a child process works the log; thread: in the server
    processor_max_attempts: int = 3  # failures in a row before a batch is dead-lettered
    public_url: str = ""  # base URL of links in alerts, e.g. https://wk.example.com
    monitors: list[Any] = []  # raw monitor specs: watchkeeper.alerts.config parses them
    notifiers: dict[str, Any] = {}  # name → its raw config, built by watchkeeper.alerts.config
    delivery_attempts: int = 8
    delivery_backoff_seconds: float = 1.0
    delivery_timeout_seconds: float = 10.0
    ready_min_free_mb: float = 64.0  # /readyz: free space the data directory needs (0: any)
    # spool: served events are spooled and committed in groups (ingest.writer); sync: each
    # request's events are committed before its answer
    serving_log: str = "spool"
    # the inference routes answered before the router's other routes (server/inference.py);
    # false: through FastAPI's routes, as documented (the same answers, slower)
    inference_fast_path: bool = True
    # the ingest routes (predictions, actuals, CloudEvents) answered likewise, by their own
    # endpoints (server/fastroute.py); false: through FastAPI's routes (the same answers)
    ingest_fast_path: bool = True
    shadow_queue_size: int = 1000  # shadow copies waiting; beyond, a copy is dropped, counted
    promotion_policies: dict[str, Any] = {}  # model → its promotion policy (promotion.policy)
    mlflow_tracking_uri: str = (
        ""  # MLflow models:/ and runs:/ artifacts; empty: MLFLOW_TRACKING_URI
    )
    # browsers (server/guard.py): the Host names served (empty: derived from host and
    # public_url, see trusted_hosts) and the other origins whose pages may post here
    allowed_hosts: list[str] = []
    allowed_origins: list[str] = []
    session_hours: float = 12.0  # a dashboard session ends this long after sign-in
    # failed token checks (bearer or login) per client address before 429, and their window
    auth_failure_limit: int = 10
    auth_failure_window_seconds: float = 60.0
    # several replicas on one PostgreSQL (store/leases.py): this process's name in /healthz,
    # the logs and pg_stat_activity (empty: hostname-pid), and how long a lost replica's
    # leases may outlive it
    replica_id: str = ""
    lease_seconds: float = 10.0
    # the Parquet lake (empty: <data_dir>/lake); replicas share one, e.g. on NFS
    lake_path: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the other sources are merged by load_settings, in order

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:  # store.state.create_engine picks the driver
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'state.db').resolve()}"

    @property
    def lake_dir(self) -> Path:
        return Path(self.lake_path) if self.lake_path else self.data_dir / "lake"

    @property
    def is_loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name other than localhost
            return False

    @property
    def tokens_required(self) -> bool:
        if self.require_tokens is not None:
            return self.require_tokens
        return not self.is_loopback

    @property
    def trusted_hosts(self) -> list[str]:
        """The Host names the server answers: ``allowed_hosts`` when set; else, on a loopback
        address, the loopback names and the host of ``public_url``; on any other address every
        name (``*``: tokens are on there, and a page of another site has none to send).

        >>> Settings(public_url="https://wk.example.com").trusted_hosts
        ['localhost', '127.0.0.1', '::1', 'wk.example.com']
        >>> Settings(host="0.0.0.0").trusted_hosts, Settings(allowed_hosts=["a"]).trusted_hosts
        (['*'], ['a'])
        """
        if self.allowed_hosts:
            return list(self.allowed_hosts)
        if not self.is_loopback:
            return ["*"]
        names = [*LOOPBACK_NAMES]
        public = urlsplit(self.public_url).hostname if self.public_url else None
        if self.host not in names:
            names.append(self.host)
        if public and public not in names:
            names.append(public)
        return names

    @field_validator(*NAME_LISTS, mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):  # one name, or a comma-separated list
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        out = []
        for name in value:
            host = name.strip().lower()
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            if not host or "/" in host or (":" in host and not _is_ip(host)):
                raise ValueError(
                    f"{name!r} is not a host name (give names without scheme or port, "
                    "e.g. wk.example.com, *.example.com or *)"
                )
            out.append(host)
        return out

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            parts = urlsplit(origin.strip())
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                raise ValueError(
                    f"{origin!r} is not an origin (scheme://host[:port], "
                    "e.g. https://grafana.example.com)"
                )
            out.append(f"{parts.scheme}://{parts.netloc}".lower())
        return out

    @field_validator("require_tokens", mode="before")
    @classmethod
    def _auto(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip().lower() in _AUTO):
            return None
        return value

    @field_validator("monitors", mode="before")
    @classmethod
    def _monitor_list(cls, value: object) -> object:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"expected a list of monitors, got {type(value).__name__}")
        return value

    @field_validator("notifiers", mode="before")
    @classmethod
    def _notifier_mapping(cls, value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(
                f"expected a mapping of name: {{type: ..., ...}}, got {type(value).__name__}"
            )
        return value

    @field_validator(*POSITIVE)
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator("processor")
    @classmethod
    def _processor(cls, value: str) -> str:
        if value not in ("process", "thread"):
            raise ValueError(f"expected process or thread, got {value!r}")
        return value

    @field_validator("serving_log")
    @classmethod
    def _serving_log(cls, value: str) -> str:
        if value not in ("spool", "sync"):
            raise ValueError(f"expected spool or sync, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(f"unsupported {value!r}; use sqlite:// or postgresql://")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value


_AUTO = ("", "none", "auto")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class _Environment(EnvSettingsSource):
    """``WATCHKEEPER_*`` variables of a given mapping (``os.environ`` by default); JSON text
    that does not parse is an error naming the setting."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, False, False, None)

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        if field is None:  # a nested value: JSON when it parses, else kept as the text it is
            return json.loads(value)
        if isinstance(value, str) and not value.strip():
            return field.get_default(call_default_factory=True)
        listed = isinstance(value, str) and value.lstrip().startswith("[")
        if field_name in NAME_LISTS and isinstance(value, str) and not listed:
            return value  # a comma-separated list: Settings splits it
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            raise InputError(f"setting {field_name}: expected JSON ({exc})") from None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    secrets_dir: str | os.PathLike[str] | None = None,
    **overrides: object,
) -> Settings:
    """Settings from defaults ← file ← secrets directory ← environment ← ``overrides``
    (None values ignored).

    ``path`` defaults to ``WATCHKEEPER_CONFIG``, ``secrets_dir`` to ``WATCHKEEPER_SECRETS_DIR``.
    """
    environ = os.environ if environ is None else environ
    known = set(Settings.model_fields)
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = environ[ENV_PREFIX + "CONFIG"]
    if secrets_dir is None and environ.get(ENV_PREFIX + "SECRETS_DIR"):
        secrets_dir = environ[ENV_PREFIX + "SECRETS_DIR"]
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_file(Path(path), known)
    if secrets_dir is not None:
        values = _merge(values, _read_secrets(Path(secrets_dir)))
    try:
        values = _merge(values, _Environment(Settings, environ)())
    except SettingsError as exc:  # the JSON error is ours, with the setting's name
        if isinstance(exc.__cause__, InputError):
            raise exc.__cause__ from None
        raise InputError(str(exc)) from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown setting(s) {unknown}")
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _input_error(exc) from None


def _read_file(p: Path, known: set[str]) -> dict[str, Any]:
    if not p.is_file():
        raise InputError(f"settings file not found: {p}")
    try:
        data = (json.loads if p.suffix == ".json" else yaml.safe_load)(p.read_text()) or {}
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"settings file {p}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"settings file {p}: expected a mapping at the top level")
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise InputError(f"settings file {p}: unknown setting(s) {unknown}")
    return data


def _read_secrets(directory: Path) -> dict[str, Any]:
    """One file per value: ``database_url``, ``notifiers__ops__secret`` (a trailing newline is
    not part of the value). Files that name no setting are ignored, as are hidden ones."""
    if not directory.is_dir():
        raise InputError(f"secrets directory not found: {directory}")
    source = NestedSecretsSettingsSource(
        SecretsSettingsSource(Settings),
        secrets_dir=directory,
        secrets_dir_missing="error",
        secrets_prefix="",
        secrets_nested_delimiter=NESTED_DELIMITER,
    )
    source.env_vars = {k: v if v is None else v.rstrip("\r\n") for k, v in source.env_vars.items()}
    return source()


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _input_error(exc: ValidationError) -> InputError:
    """The first problem, naming the setting and the value."""
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"]) or "settings"
    if error["type"] == "value_error":
        return InputError(f"setting {name}: {error['ctx']['error']}")
    if error["type"] == "extra_forbidden":
        return InputError(f"unknown setting(s) [{name!r}]")
    return InputError(f"setting {name}: invalid value {error['input']!r} ({error['msg']})")
