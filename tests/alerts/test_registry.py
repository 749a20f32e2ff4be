"""A notifier type is one class: its fields, its secrets and its constructor travel with it, and
its entry in ``NOTIFIER_TYPES`` is all the settings need."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.receivers import HttpReceiver
from watchkeeper.alerts import channels
from watchkeeper.alerts.delivery import Notifier
from watchkeeper.alerts.fields import Fields
from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.errors import InputError


class ChatNotifier(Notifier):
    """A made-up chat service: POSTs ``{"room": ..., "text": ...}`` to a secret URL."""

    type = "chat"
    fields = ("url", "room")
    secrets = ("url",)

    @classmethod
    def from_config(cls, name: str, f: Fields, routing: Mapping[str, Any]) -> Notifier:
        return cls(name, url=f.url("url", required=True), room=f.string("room") or "ml", **routing)

    def __init__(self, name: str, *, url: str, room: str, **routing: Any) -> None:
        super().__init__(name, **routing)
        self.url, self.room = url, room

    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        body = json.dumps({"room": self.room, "text": alert["summary"]}).encode()
        channels.post(self, self.url, body, {}, timeout)


def test_a_new_notifier_type_is_one_class_and_its_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, webhook_receiver: HttpReceiver
) -> None:
    monkeypatch.setitem(channels.NOTIFIER_TYPES, "chat", ChatNotifier)
    (tmp_path / "chat-url").write_text(webhook_receiver.url + "\n")
    notifiers = build_notifiers(
        {"team": {"type": "chat", "url_file": str(tmp_path / "chat-url"), "severities": "critical"}}
    )
    team = notifiers["team"]
    assert team.accepts({"severity": "critical"}) and not team.accepts({"severity": "warning"})
    team.send({"summary": "churn accuracy 0.8 <= 0.85"})
    assert webhook_receiver.wait_for(1)[0].json() == {
        "room": "ml",
        "text": "churn accuracy 0.8 <= 0.85",
    }
    with pytest.raises(InputError, match=r"notifier 'team': unknown field\(s\) \['channel'\]"):
        build_notifiers({"team": {"type": "chat", "url": webhook_receiver.url, "channel": "x"}})
    with pytest.raises(InputError, match="notifier 'team': field 'url': required"):
        build_notifiers({"team": {"type": "chat"}})
