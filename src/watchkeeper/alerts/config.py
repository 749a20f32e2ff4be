"""The alert part of the settings, parsed and checked: the settings hold raw mappings and
lists (:mod:`watchkeeper.settings` imports nothing from the alerts); this module builds the
notifiers (no network) and parses the monitors, checking their ``notify`` names.

>>> from watchkeeper.settings import Settings
>>> config = alert_config(Settings(
...     notifiers={"audit": {"type": "log"}},
...     monitors=[{"name": "floor", "model": "churn", "metric": "accuracy",
...                "condition": "<= 0.85", "notify": ["audit"]}],
... ))
>>> [m.name for m in config.monitors], list(config.notifiers)
(['floor'], ['audit'])
"""

from __future__ import annotations

from dataclasses import dataclass

from watchkeeper.alerts.delivery import Notifier
from watchkeeper.alerts.monitors import Monitor, parse_monitors
from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.errors import InputError
from watchkeeper.settings import Settings


@dataclass(frozen=True)
class AlertConfig:
    """The settings file's monitors, validated, and its notifiers, built."""

    monitors: list[Monitor]
    notifiers: dict[str, Notifier]


def alert_config(settings: Settings) -> AlertConfig:
    """Raises :class:`~watchkeeper.errors.InputError` naming the monitor or notifier and the
    field, before anything runs."""
    if not isinstance(settings.notifiers, dict):
        raise InputError(
            f"setting notifiers: expected a mapping of name: {{type: ..., ...}}, "
            f"got {type(settings.notifiers).__name__}"
        )
    notifiers = build_notifiers(settings.notifiers)
    monitors = parse_monitors(settings.monitors, notifiers=list(notifiers), source="config")
    return AlertConfig(monitors, notifiers)
