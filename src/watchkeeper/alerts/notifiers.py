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

A type's fields are read by its class (``Notifier.from_config``); this module checks the type,
the routing and unknown keys. Every field of every type is described in ``docs/alerts.md``.
Errors name the notifier and the field, never echo a secret, and come before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from watchkeeper.alerts.fields import FILE_SUFFIX, Fields
from watchkeeper.alerts.formats import SEVERITIES
from watchkeeper.errors import InputError

__all__ = [
    "FIELDS",
    "NOTIFIER_TYPES",
    "PAGERDUTY_URL",
    "ROUTING_FIELDS",
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
# type → its own fields, as the classes declare them
FIELDS: dict[str, tuple[str, ...]] = {kind: cls.fields for kind, cls in NOTIFIER_TYPES.items()}


def build_notifiers(config: Mapping[str, Any] | None) -> dict[str, Notifier]:
    """One notifier per entry of ``config`` (the settings file's ``notifiers:``), by name.

    Raises :class:`~watchkeeper.errors.InputError` naming the notifier and the field for an
    unknown type, a missing or invalid field, an unreadable secret file, or an unknown key.
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
        raise InputError(
            f"notifier {name!r}: field 'type': required, one of {list(NOTIFIER_TYPES)}"
        )
    cls = NOTIFIER_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InputError(
            f"notifier {name!r}: field 'type': unknown type {kind!r}, expected one of "
            f"{list(NOTIFIER_TYPES)}"
        )
    files = tuple(key + FILE_SUFFIX for key in cls.secrets)
    allowed = ("type", *ROUTING_FIELDS, *cls.fields, *files)
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        raise InputError(
            f"notifier {name!r}: unknown field(s) {unknown} for type {kind!r}; "
            f"allowed: {sorted(allowed)}"
        )
    f = Fields(name, spec, secrets=cls.secrets)
    routing: dict[str, Any] = {
        "severities": f.strings("severities", allowed=SEVERITIES),
        "models": f.strings("models"),
        "send_resolved": f.boolean("send_resolved", True),
    }
    return cls.from_config(name, f, routing)
