"""Notifier secrets from files: ``<field>_file`` in a notifier's settings, or one file per value
in the secrets directory. Each secret is used for a real delivery to a loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.receivers import HttpReceiver, SmtpReceiver
from watchkeeper.alerts.config import alert_config
from watchkeeper.alerts.notifiers import build_notifiers
from watchkeeper.errors import InputError
from watchkeeper.settings import load_settings

ALERT: dict[str, Any] = {
    "id": 7,
    "monitor": "churn-accuracy",
    "model": "churn",
    "version": "v1",
    "segment": "*",
    "target": "",
    "severity": "critical",
    "state": "firing",
    "metric": "accuracy",
    "value": 0.8,
    "condition": "<= 0.85",
    "threshold": 0.85,
    "window_start": 1714557600,
    "window_seconds": 3600,
    "sample_size": 100,
    "top_features": [],
    "started_at": 1714561300.0,
    "resolved_at": None,
    "summary": "churn accuracy 0.8 <= 0.85",
    "url": None,
}


def signed_with(secret: str, request: Any) -> bool:
    timestamp = request.header("x-watchkeeper-timestamp")
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    return hmac.compare_digest(
        request.header("x-watchkeeper-signature") or "", "sha256=" + mac.hexdigest()
    )


def test_a_webhook_secret_from_a_file_signs_the_delivery(
    tmp_path: Path, webhook_receiver: HttpReceiver
) -> None:
    (tmp_path / "hook-secret").write_text("from-a-file\n")  # as `echo ... > file` writes it
    notifiers = build_notifiers(
        {
            "ops": {
                "type": "webhook",
                "url": webhook_receiver.url,
                "secret_file": str(tmp_path / "hook-secret"),
            }
        }
    )
    notifiers["ops"].send(ALERT)
    (request,) = webhook_receiver.wait_for(1)
    assert signed_with("from-a-file", request)


def test_slack_url_pagerduty_key_and_smtp_password_from_files(
    tmp_path: Path,
    make_http_receiver: Callable[..., HttpReceiver],
    make_smtp_receiver: Callable[..., SmtpReceiver],
) -> None:
    slack, pagerduty = make_http_receiver(), make_http_receiver()
    smtp = make_smtp_receiver(auth=("wk", "pa55"))
    files = {"slack-url": slack.url, "routing-key": "R0UT1NG", "smtp-password": "pa55"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    notifiers = build_notifiers(
        {
            "team": {"type": "slack", "url_file": str(tmp_path / "slack-url")},
            "oncall": {
                "type": "pagerduty",
                "routing_key_file": str(tmp_path / "routing-key"),
                "url": pagerduty.url,
            },
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "username": "wk",
                "password_file": str(tmp_path / "smtp-password"),
                "from": "watchkeeper@example.com",
                "to": "oncall@example.com",
            },
        }
    )
    for notifier in notifiers.values():
        notifier.send(ALERT)
    assert slack.wait_for(1)[0].json()["text"]
    assert pagerduty.wait_for(1)[0].json()["routing_key"] == "R0UT1NG"
    assert smtp.wait_for(1) and smtp.mails[0].login == "wk"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"secret": "inline", "secret_file": "x"},
            "notifier 'ops': field 'secret': give either 'secret' or 'secret_file', not both",
        ),
        ({"secret_file": "missing"}, "notifier 'ops': field 'secret_file': cannot read .*missing"),
        ({"secret_file": ""}, "notifier 'ops': field 'secret_file': expected the path of a file"),
        ({"url_file": "x"}, r"notifier 'ops': unknown field\(s\) \['url_file'\]"),
    ],
)
def test_secret_file_mistakes_name_the_notifier_and_the_field(
    tmp_path: Path, spec: dict[str, str], message: str
) -> None:
    (tmp_path / "x").write_text("never-shown")
    spec = {k: str(tmp_path / v) if k.endswith("_file") and v else v for k, v in spec.items()}
    config = {"ops": {"type": "webhook", "url": "http://127.0.0.1:9/hook", **spec}}
    with pytest.raises(InputError, match=message) as info:
        build_notifiers(config)
    assert "never-shown" not in str(info.value)


def test_an_empty_secret_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    spec = {"type": "pagerduty", "routing_key_file": str(tmp_path / "empty")}
    with pytest.raises(InputError, match="field 'routing_key': must not be empty"):
        build_notifiers({"oncall": spec})


def test_notifier_secrets_from_the_secrets_directory_and_the_environment(
    tmp_path: Path, webhook_receiver: HttpReceiver
) -> None:
    settings_file = tmp_path / "wk.yaml"
    settings_file.write_text(
        f"notifiers:\n  ops: {{type: webhook, url: '{webhook_receiver.url}'}}\n"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "notifiers__ops__secret").write_text("from-the-secrets-dir\n")
    settings = load_settings(settings_file, environ={}, secrets_dir=secrets)
    alert_config(settings).notifiers["ops"].send(ALERT)
    assert signed_with("from-the-secrets-dir", webhook_receiver.wait_for(1)[0])

    webhook_receiver.clear()
    env = {
        "WATCHKEEPER_SECRETS_DIR": str(secrets),
        "WATCHKEEPER_NOTIFIERS__OPS__SECRET": "from-the-environment",
    }
    alert_config(load_settings(settings_file, environ=env)).notifiers["ops"].send(ALERT)
    assert signed_with("from-the-environment", webhook_receiver.wait_for(1)[0])
