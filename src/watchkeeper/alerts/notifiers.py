"""Notifiers from the ``notifiers:`` mapping of the settings file, and the public names.

>>> notifiers = build_notifiers({
...     "ops": {"type": "webhook", "url": "http://127.0.0.1:9000/hook", "secret": "s3cret"},
...     "oncall": {"type": "pagerduty", "routing_key": "R0UT1NG", "severities": ["critical"]},
...     "audit": {"type": "log"},
... })
>>> sorted(notifiers), notifiers["oncall"].severities
(['audit', 'oncall', 'ops'], frozenset({'critical'}))
>>> build_notifiers({"ops": {"type": "webhook"}})
Traceback (most recent call last):
...
watchkeeper.errors.InputError: notifier 'ops': field 'url': required

Every field of every type is described in ``docs/alerts.md``. Errors name the notifier and
the field, never echo a secret, and come before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from watchkeeper.alerts.channels import (
    NOTIFIER_TYPES,
    PAGERDUTY_URL,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EmailNotifier,
    LogNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    sign,
)
from watchkeeper.alerts.delivery import (
    DeliveryResult,
    Notifier,
    NotifierError,
    backoff_delay,
    deliver,
)
from watchkeeper.alerts.formats import SEVERITIES
from watchkeeper.errors import InputError

__all__ = [
    "NOTIFIER_TYPES",
    "PAGERDUTY_URL",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "EmailNotifier",
    "LogNotifier",
    "Notifier",
    "NotifierError",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "backoff_delay",
    "build_notifiers",
    "deliver",
    "sign",
]

ROUTING_FIELDS = ("severities", "models", "send_resolved")
FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "secret", "headers"),
    "slack": ("url",),
    "pagerduty": ("routing_key", "url", "source"),
    "email": (
        "host",
        "port",
        "starttls",
        "ssl",
        "username",
        "password",
        "from",
        "to",
        "subject_prefix",
    ),
    "log": (),
}
RESERVED_HEADERS = ("content-type", SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower())
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110)
_ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+$")


def build_notifiers(config: Mapping[str, Any] | None) -> dict[str, Notifier]:
    """One notifier per entry of ``config`` (the settings file's ``notifiers:``), by name.

    Raises :class:`~watchkeeper.errors.InputError` naming the notifier and the field for an
    unknown type, a missing or invalid field, or an unknown key.
    """
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InputError(
            f"notifiers: expected a mapping of name to settings, got {type(config).__name__}"
        )
    return {_name(name): _build(str(name), spec) for name, spec in config.items()}


def _name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"notifiers: a notifier name must be a non-empty string, got {name!r}")
    return name


def _build(name: str, spec: object) -> Notifier:
    if not isinstance(spec, Mapping):
        raise InputError(f"notifier {name!r}: expected a mapping with a 'type' field")
    kind = spec.get("type")
    if kind is None:
        raise InputError(f"notifier {name!r}: field 'type': required, one of {list(FIELDS)}")
    if kind not in FIELDS:
        raise InputError(
            f"notifier {name!r}: field 'type': unknown type {kind!r}, expected one of "
            f"{list(FIELDS)}"
        )
    allowed = ("type", *ROUTING_FIELDS, *FIELDS[kind])
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        raise InputError(
            f"notifier {name!r}: unknown field(s) {unknown} for type {kind!r}; "
            f"allowed: {sorted(allowed)}"
        )
    r = _Reader(name, spec)
    routing: dict[str, Any] = {
        "severities": r.strings("severities", allowed=SEVERITIES),
        "models": r.strings("models"),
        "send_resolved": r.boolean("send_resolved", True),
    }
    if kind == "webhook":
        return WebhookNotifier(
            name,
            url=r.url("url", required=True),
            secret=r.string("secret"),
            headers=r.headers("headers"),
            **routing,
        )
    if kind == "slack":
        return SlackNotifier(name, url=r.url("url", required=True), **routing)
    if kind == "pagerduty":
        return PagerDutyNotifier(
            name,
            routing_key=r.string("routing_key", required=True),
            url=r.url("url") or PAGERDUTY_URL,
            source=r.string("source") or "watchkeeper",
            **routing,
        )
    if kind == "email":
        return _email(name, r, routing)
    return LogNotifier(name, **routing)


def _email(name: str, r: _Reader, routing: dict[str, Any]) -> EmailNotifier:
    starttls, use_ssl = r.boolean("starttls", False), r.boolean("ssl", False)
    if starttls and use_ssl:
        raise r.fail("ssl", "cannot be true together with 'starttls': choose one")
    username, password = r.string("username"), r.string("password")
    if password is not None and username is None:
        raise r.fail("username", "required when 'password' is set")
    to = r.strings("to", address=True)
    if to is None:
        raise r.fail("to", "required: an address or a list of addresses")
    return EmailNotifier(
        name,
        host=r.string("host", required=True),
        port=r.port("port"),
        starttls=starttls,
        use_ssl=use_ssl,
        username=username,
        password=password,
        sender=r.address("from"),
        to=to,
        subject_prefix=_default(r.string("subject_prefix", blank=True), "[watchkeeper]"),
        **routing,
    )


def _default(value: str | None, default: str) -> str:
    return default if value is None else value


class _Reader:
    """Typed reads of one notifier's fields; errors name the notifier and the field."""

    def __init__(self, name: str, spec: Mapping[str, Any]) -> None:
        self.name, self.spec = name, spec

    def fail(self, key: str, problem: str) -> InputError:
        return InputError(f"notifier {self.name!r}: field {key!r}: {problem}")

    def string(self, key: str, *, required: bool = False, blank: bool = False) -> Any:
        value = self.spec.get(key)
        if value is None:
            if required:
                raise self.fail(key, "required")
            return None
        if not isinstance(value, str):  # the value may be a secret: its type only
            raise self.fail(key, f"expected a string, got {type(value).__name__}")
        if not blank and not value.strip():
            raise self.fail(key, "must not be empty")
        if "\n" in value or "\r" in value:
            raise self.fail(key, "must be one line")
        return value

    def url(self, key: str, *, required: bool = False) -> Any:
        value = self.string(key, required=required)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(
                key, f"expected an http:// or https:// URL with a host, got scheme {parts.scheme!r}"
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.spec.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def port(self, key: str) -> int | None:
        value = self.spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise self.fail(key, f"expected a port number 1-65535, got {value!r}")
        return value

    def address(self, key: str) -> str:
        value = self.string(key, required=True)
        if not _ADDRESS.match(value):
            raise self.fail(
                key, f"expected an email address like alerts@example.com, got {value!r}"
            )
        return str(value)

    def strings(
        self, key: str, *, allowed: tuple[str, ...] | None = None, address: bool = False
    ) -> list[str] | None:
        value = self.spec.get(key)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise self.fail(key, "expected a non-empty string or a list of them")
        if not items:
            raise self.fail(key, "must not be an empty list (omit it to accept every value)")
        for item in items:
            if allowed is not None and item not in allowed:
                raise self.fail(key, f"unknown value {item!r}, expected some of {list(allowed)}")
            if address and not _ADDRESS.match(item):
                raise self.fail(key, f"expected email addresses, got {item!r}")
        return list(items)

    def headers(self, key: str) -> dict[str, str]:
        value = self.spec.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping of header name to value, got {value!r}")
        for name, text in value.items():
            if not isinstance(name, str) or not _TOKEN.match(name):
                raise self.fail(key, f"invalid header name {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise self.fail(key, f"header {name!r} is set by watchkeeper")
            if not isinstance(text, str) or "\n" in text or "\r" in text:
                raise self.fail(key, f"header {name!r}: expected a one-line string")
        return dict(value)
