"""Notifiers delivered to real receivers on loopback: an HTTP server and an SMTP server.

Each format is parsed on the receiver's side; the webhook signature is recomputed there;
retries, failures and routing go through :func:`deliver` with real network errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alerts.receivers import HttpReceiver, SmtpReceiver, free_port
from watchkeeper.alerts import formats
from watchkeeper.alerts.delivery import JITTER
from watchkeeper.alerts.notifiers import (
    FIELDS,
    NOTIFIER_TYPES,
    ROUTING_FIELDS,
    Notifier,
    NotifierError,
    build_notifiers,
    deliver,
)
from watchkeeper.errors import InputError

XSS = "<img src=x onerror=alert(1)>"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def make_alert(**changes: Any) -> dict[str, Any]:
    """An alert dict as the engine passes it."""
    alert: dict[str, Any] = {
        "id": 42,
        "monitor": "churn-accuracy",
        "model": "churn",
        "version": "v3",
        "segment": "*",
        "target": "",
        "severity": "critical",
        "state": "firing",
        "metric": "accuracy",
        "value": 0.8123,
        "condition": "<= 0.85",
        "threshold": 0.85,
        "window_start": 1714557600,
        "window_seconds": 3600,
        "sample_size": 1234,
        "top_features": [],
        "started_at": 1714561300.25,
        "resolved_at": None,
        "summary": "churn accuracy 0.8123 <= 0.85 in the window of 2024-05-01 10:00 UTC",
        "url": "http://127.0.0.1:8700/models/churn",
    }
    alert.update(changes)
    return alert


def drift_alert(feature: str = XSS, **changes: Any) -> dict[str, Any]:
    return make_alert(
        monitor="churn-drift",
        metric="drift",
        target=feature,
        severity="warning",
        value=0.31,
        condition="> 0.12",
        threshold=0.12,
        top_features=[
            {"feature": feature, "statistic": 0.31, "threshold": 0.12},
            {"feature": "tenure", "statistic": 0.2, "threshold": 0.1},
        ],
        summary=f"drift in {feature} (0.31 > 0.12)",
        **changes,
    )


def one(config: dict[str, Any]) -> Notifier:
    return build_notifiers({"n": config})["n"]


def strict_json(body: bytes) -> Any:
    def reject(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(body, parse_constant=reject)


# ------------------------------------------------------------------------------ webhook
def test_webhook_posts_signed_json_that_verifies_on_the_receiver(
    webhook_receiver: HttpReceiver,
) -> None:
    secret = "s3cret-for-tests"
    notifier = one(
        {
            "type": "webhook",
            "url": webhook_receiver.url,
            "secret": secret,
            "headers": {"X-Team": "ml"},
        }
    )
    alert = make_alert()
    before = time.time()
    notifier.send(alert)
    (request,) = webhook_receiver.wait_for(1)

    assert (request.method, request.path) == ("POST", "/hook")
    assert request.header("content-type") == "application/json"
    assert request.header("x-team") == "ml"
    assert strict_json(request.body) == {"type": "watchkeeper.alert", "alert": alert}
    # the receiver's check: HMAC-SHA256 over "{timestamp}." + raw body, constant-time compare
    timestamp = request.header("x-watchkeeper-timestamp")
    assert timestamp is not None and math.floor(before) <= int(timestamp) <= time.time()
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    signature = request.header("x-watchkeeper-signature") or ""
    assert hmac.compare_digest(signature, "sha256=" + expected.hexdigest())
    tampered = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + request.body + b" ", hashlib.sha256
    )
    assert not hmac.compare_digest(signature, "sha256=" + tampered.hexdigest())


def test_the_documented_verification_snippet_accepts_a_real_delivery(
    webhook_receiver: HttpReceiver,
) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(encoding="utf-8"), re.M | re.S)
    snippet = next(b for b in blocks if "def verify" in b)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verify = namespace["verify"]
    one({"type": "webhook", "url": webhook_receiver.url, "secret": "k"}).send(make_alert())
    (request,) = webhook_receiver.wait_for(1)
    assert verify("k", request.headers, request.body) is True
    assert verify("other", request.headers, request.body) is False
    assert verify("k", request.headers, request.body.replace(b"churn", b"chorn")) is False
    stale = {**request.headers, "x-watchkeeper-timestamp": str(int(time.time()) - 3600)}
    assert verify("k", stale, request.body) is False


def test_webhook_without_secret_sends_no_signature_and_nan_as_null(
    webhook_receiver: HttpReceiver,
) -> None:
    one({"type": "webhook", "url": webhook_receiver.url}).send(make_alert(value=float("nan")))
    (request,) = webhook_receiver.wait_for(1)
    assert request.header("x-watchkeeper-signature") is None
    assert strict_json(request.body)["alert"]["value"] is None


def test_a_redirect_is_not_followed(make_http_receiver: Callable[..., HttpReceiver]) -> None:
    receiver = make_http_receiver()
    receiver.fail_next(1, status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    with pytest.raises(NotifierError, match="HTTP 302"):
        one({"type": "webhook", "url": receiver.url}).send(make_alert())
    assert [r.method for r in receiver.requests] == ["POST"]


# ------------------------------------------------------------------------------ slack
def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [
            s
            for k, v in node.items()
            for s in ([v] if k == "text" and isinstance(v, str) else _texts(v))
        ]
    if isinstance(node, list):
        return [s for v in node for s in _texts(v)]
    return []


def test_slack_message_has_blocks_and_escapes_production_data(
    webhook_receiver: HttpReceiver,
) -> None:
    alert = drift_alert(segment="<!channel> & co")
    one({"type": "slack", "url": webhook_receiver.url}).send(alert)
    message = webhook_receiver.wait_for(1)[0].json()

    assert [b["type"] for b in message["blocks"]] == [
        "header",
        "section",
        "section",
        "section",
        "context",
    ]
    header = message["blocks"][0]["text"]
    assert header["type"] == "plain_text" and len(header["text"]) <= 150
    assert header["text"].startswith("WARNING churn")
    fields = {
        f["text"].split("\n")[0]: f["text"].split("\n", 1)[1]
        for f in message["blocks"][2]["fields"]
    }
    assert fields["*Severity*"] == "WARNING"
    assert fields["*Model*"] == "churn (version v3)"
    condition = alert["condition"].replace(">", "&gt;")
    assert fields["*Value*"] == f"{alert['value']:.4g} (alert when {condition})"
    assert fields["*Window*"] == f"2024-05-01 10:00 UTC, 1 h, {alert['sample_size']:,} samples"
    assert fields["*Segment*"] == "&lt;!channel&gt; &amp; co"
    features = message["blocks"][3]["text"]["text"]
    assert (
        features.startswith("*Top features*")
        and "tenure: statistic 0.2 (threshold 0.1)" in features
    )
    assert message["blocks"][4]["elements"][0]["text"].endswith(
        f"<{alert['url']}|open in watchkeeper>"
    )

    texts = [message["text"], *_texts(message["blocks"])]
    escaped = XSS.replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in message["text"] and escaped in features
    for text in texts:  # the only raw "<" left is the link to the service
        assert XSS not in text and "<!channel>" not in text
        assert re.sub(r"<http://[^|>]+\|open in watchkeeper>", "", text).count("<") == 0


def test_slack_texts_are_clipped_to_the_limits_without_breaking_an_entity() -> None:
    message = formats.slack_message(make_alert(summary="a<" * 4000, model="m&" * 100))
    header = message["blocks"][0]["text"]["text"]
    summary = message["blocks"][1]["text"]["text"]
    assert len(header) <= formats.SLACK_HEADER_MAX and len(summary) <= formats.SLACK_TEXT_MAX
    for text in (header, summary):
        assert text.endswith("…")
        assert re.fullmatch(r"([^&]|&amp;|&lt;|&gt;)*…", text), text[-12:]


# ------------------------------------------------------------------------------ pagerduty
def test_pagerduty_trigger_then_resolve_with_one_dedup_key(
    make_http_receiver: Callable[..., HttpReceiver],
) -> None:
    receiver = make_http_receiver(
        path="/v2/enqueue",
        status=202,
        body='{"status":"success","message":"Event processed"}',
        content_type="application/json",
    )
    notifier = one(
        {"type": "pagerduty", "routing_key": "R0UT1NG", "url": receiver.url, "source": "ml-prod"}
    )
    firing = make_alert(summary="x" * 5000)
    notifier.send(firing)
    notifier.send(make_alert(state="resolved", resolved_at=firing["started_at"] + 600))
    notifier.send(make_alert(segment="country=fr"))
    trigger, resolve, other = (r.json() for r in receiver.wait_for(3))

    assert trigger["routing_key"] == "R0UT1NG" and trigger["event_action"] == "trigger"
    payload = trigger["payload"]
    assert len(payload["summary"]) == 1024  # clipped to the API's limit
    assert payload["source"] == "ml-prod" and payload["component"] == "churn"
    assert payload["severity"] == "critical"
    assert datetime.fromisoformat(payload["timestamp"]).timestamp() == firing["started_at"]
    assert payload["custom_details"]["value"] == firing["value"]
    assert payload["custom_details"]["condition"] == firing["condition"]
    assert trigger["client_url"] == firing["url"]
    assert resolve == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }
    assert other["dedup_key"] != trigger["dedup_key"] and len(trigger["dedup_key"]) <= 255
    assert {r.header("content-type") for r in receiver.requests} == {"application/json"}


@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_pagerduty_severity_mapping(webhook_receiver: HttpReceiver, severity: str) -> None:
    one({"type": "pagerduty", "routing_key": "k", "url": webhook_receiver.url}).send(
        make_alert(severity=severity)
    )
    assert webhook_receiver.wait_for(1)[0].json()["payload"]["severity"] == severity


# ------------------------------------------------------------------------------ email
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def email_config(receiver: SmtpReceiver, **changes: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": receiver.host,
        "port": receiver.port,
        "from": "watchkeeper@example.com",
        "to": ["oncall@example.com", "ml@example.com"],
        **changes,
    }


def test_email_has_subject_text_and_escaped_html(smtp_receiver: SmtpReceiver) -> None:
    one(email_config(smtp_receiver)).send(make_alert())
    one(email_config(smtp_receiver)).send(drift_alert())
    first, drift = smtp_receiver.wait_for(2)

    assert first["Subject"] == "[watchkeeper] CRITICAL churn accuracy <= 0.85 (firing)"
    assert first["From"] == "watchkeeper@example.com"
    assert first["To"] == "oncall@example.com, ml@example.com"
    assert smtp_receiver.mails[0].rcpt_tos == ["oncall@example.com", "ml@example.com"]
    assert first.get_content_type() == "multipart/alternative"
    text = first.get_body(("plain",))
    html_part = first.get_body(("html",))
    assert text is not None and html_part is not None
    plain = text.get_content()
    assert "Value:    0.8123 (alert when <= 0.85)" in plain
    assert "Open in watchkeeper: http://127.0.0.1:8700/models/churn" in plain

    assert drift["Subject"] == f"[watchkeeper] WARNING churn drift {XSS} > 0.12 (firing)"
    drift_text = drift.get_body(("plain",))
    drift_html = drift.get_body(("html",))
    assert drift_text is not None and drift_html is not None
    assert f"  - {XSS}: statistic 0.31 (threshold 0.12)" in drift_text.get_content()
    markup = drift_html.get_content()
    assert XSS not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    parser = _Tags()
    parser.feed(markup)
    assert "img" not in parser.tags and {"table", "ul", "a"} <= set(parser.tags)
    assert any(XSS in t for t in parser.text)  # shown to the reader as text


def test_email_logs_in_and_a_wrong_password_is_not_retried(
    make_smtp_receiver: Callable[..., SmtpReceiver],
) -> None:
    receiver = make_smtp_receiver(auth=("wk", "pa55"))
    one(email_config(receiver, username="wk", password="pa55")).send(make_alert())
    assert receiver.wait_for(1) and receiver.mails[0].login == "wk"

    with pytest.raises(NotifierError, match="535") as info:
        one(email_config(receiver, username="wk", password="wrong")).send(make_alert())
    assert info.value.retryable is False and "wrong" not in str(info.value)
    assert len(receiver.mails) == 1


def test_email_starttls_against_a_server_without_it_is_a_readable_error(
    smtp_receiver: SmtpReceiver,
) -> None:
    with pytest.raises(NotifierError, match="STARTTLS") as info:
        one(email_config(smtp_receiver, starttls=True)).send(make_alert())
    assert f"{smtp_receiver.host}:{smtp_receiver.port}" in str(info.value)
    assert smtp_receiver.mails == []


def test_email_temporary_failures_are_retried(smtp_receiver: SmtpReceiver) -> None:
    smtp_receiver.fail_next(2)
    (result,) = deliver([one(email_config(smtp_receiver))], make_alert(), backoff=0.0)
    assert (result.ok, result.attempts, result.error) == (True, 3, None)
    assert len(smtp_receiver.wait_for(1)) == 1


# ------------------------------------------------------------------------------ log
def test_log_notifier_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    notifier = one({"type": "log"})
    caplog.set_level(logging.INFO, logger="watchkeeper.alerts")
    notifier.send(make_alert())
    notifier.send(make_alert(severity="warning"))
    notifier.send(make_alert(state="resolved", resolved_at=1714562000.0))
    records = [r for r in caplog.records if r.name == "watchkeeper.alerts"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.WARNING, logging.INFO]
    first = records[0].getMessage()
    assert "\n" not in first
    assert json.loads(first) == {"event": "watchkeeper.alert", **make_alert()}
    assert records[2].alert["state"] == "resolved"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ deliver
def test_retry_with_backoff_succeeds_after_two_failures(webhook_receiver: HttpReceiver) -> None:
    webhook_receiver.fail_next(2)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    backoff = 0.05
    (result,) = deliver(
        [one({"type": "webhook", "url": webhook_receiver.url})],
        make_alert(),
        backoff=backoff,
        sleep=sleep,
    )
    assert (result.name, result.ok, result.attempts, result.error) == ("n", True, 3, None)
    assert [r.status for r in webhook_receiver.requests] == [500, 500, 200]
    assert len(slept) == 2
    for k, delay in enumerate(slept):
        assert backoff * 2**k <= delay < backoff * 2**k * (1 + JITTER)
    assert result.duration >= sum(slept)


def test_giving_up_reports_status_and_body(webhook_receiver: HttpReceiver) -> None:
    webhook_receiver.fail_next(5, body="database is\n  on fire")
    (result,) = deliver(
        [one({"type": "webhook", "url": webhook_receiver.url})], make_alert(), backoff=0.0
    )
    assert (result.ok, result.attempts) == (False, 3)
    assert result.error == (
        f"notifier 'n' (webhook): HTTP 500 from http://127.0.0.1:{webhook_receiver.port}: "
        "database is on fire"
    )
    assert len(webhook_receiver.requests) == 3


def test_a_4xx_is_not_retried_and_retry_after_is_honoured(
    make_http_receiver: Callable[..., HttpReceiver],
) -> None:
    bad = make_http_receiver()
    bad.fail_next(3, status=400, body='{"status":"invalid event","errors":["routing_key"]}')
    limited = make_http_receiver()
    limited.fail_next(1, status=429, headers={"Retry-After": "7"})
    slept: list[float] = []
    bad_result, limited_result = deliver(
        [one({"type": "pagerduty", "routing_key": "k", "url": u}) for u in (bad.url, limited.url)],
        make_alert(),
        backoff=0.01,
        sleep=slept.append,
    )
    assert (bad_result.ok, bad_result.attempts) == (False, 1)
    assert "HTTP 400" in (bad_result.error or "") and "invalid event" in (bad_result.error or "")
    assert (limited_result.ok, limited_result.attempts) == (True, 2)
    assert slept == [7.0]


def test_a_down_receiver_fails_readably_while_the_others_deliver(
    webhook_receiver: HttpReceiver, smtp_receiver: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    notifiers = build_notifiers(
        {
            "down": {"type": "slack", "url": f"http://127.0.0.1:{port}/services/T0/B0/SECRET"},
            "ops": {"type": "webhook", "url": webhook_receiver.url},
            "mail": email_config(smtp_receiver),
        }
    )
    caplog.set_level(logging.WARNING, logger="watchkeeper.alerts.delivery")
    down, ops, mail = deliver(notifiers.values(), make_alert(), backoff=0.0)
    assert (down.name, down.ok, down.attempts) == ("down", False, 3)
    assert (
        down.error
        == f"notifier 'down' (slack): cannot reach http://127.0.0.1:{port}: connection refused"
    )
    assert "SECRET" not in caplog.text  # the secret path of a Slack URL is never shown
    assert (ops.ok, mail.ok) == (True, True)
    assert len(webhook_receiver.wait_for(1)) == 1 and len(smtp_receiver.wait_for(1)) == 1
    assert caplog.text.count("connection refused") == 3  # every failed attempt is visible


def test_a_receiver_that_comes_back_gets_the_retry(webhook_receiver: HttpReceiver) -> None:
    notifier = one({"type": "webhook", "url": webhook_receiver.url})
    webhook_receiver.stop()
    with pytest.raises(NotifierError, match="connection refused"):
        notifier.send(make_alert())
    (result,) = deliver(
        [notifier], make_alert(), backoff=0.0, sleep=lambda _: webhook_receiver.start()
    )
    assert (result.ok, result.attempts) == (True, 2)
    assert len(webhook_receiver.wait_for(1)) == 1


def test_a_hanging_receiver_times_out_without_delaying_the_others(
    make_http_receiver: Callable[..., HttpReceiver],
) -> None:
    slow, fast = make_http_receiver(), make_http_receiver()
    slow.delay = 10.0
    timeout = 1.0
    started, started_wall = time.monotonic(), time.time()
    slow_result, fast_result = deliver(
        [one({"type": "webhook", "url": r.url}) for r in (slow, fast)],
        make_alert(),
        attempts=1,
        timeout=timeout,
    )
    assert (
        slow_result.error
        == f"notifier 'n' (webhook): no answer from http://127.0.0.1:{slow.port}: timed out after 1 s"
    )
    assert timeout <= slow_result.duration < time.monotonic() - started + 0.01
    assert fast_result.ok and fast_result.duration < timeout
    # in parallel: the fast receiver had its alert before the slow one's timeout was over
    assert fast.requests[0].received_at - started_wall < timeout
    assert len(slow.requests) == 1  # it arrived; the answer did not


def test_an_invalid_alert_is_an_input_error_and_not_retried(webhook_receiver: HttpReceiver) -> None:
    notifier = one({"type": "webhook", "url": webhook_receiver.url})
    with pytest.raises(InputError, match="alert field 'severity'"):
        notifier.send(make_alert(severity="page-everyone"))
    (result,) = deliver([notifier], make_alert(state="pending"))
    assert (result.ok, result.attempts) == (False, 1)
    assert "alert field 'state'" in (result.error or "")
    assert webhook_receiver.requests == []


# ------------------------------------------------------------------------------ routing
def test_routing_by_severity_model_and_state(
    make_http_receiver: Callable[..., HttpReceiver],
) -> None:
    receivers = {name: make_http_receiver() for name in ("all", "critical", "churn", "fraud_eu")}
    notifiers = build_notifiers(
        {
            "all": {"type": "webhook", "url": receivers["all"].url},
            "critical": {
                "type": "webhook",
                "url": receivers["critical"].url,
                "severities": "critical",
            },
            "churn": {
                "type": "webhook",
                "url": receivers["churn"].url,
                "models": ["churn"],
                "send_resolved": False,
            },
            "fraud_eu": {
                "type": "webhook",
                "url": receivers["fraud_eu"].url,
                "models": ["fraud-*"],
                "severities": ["warning", "critical"],
            },
        }
    )
    cases = [
        (make_alert(), {"all", "critical", "churn"}),
        (make_alert(severity="warning"), {"all", "churn"}),
        (make_alert(state="resolved"), {"all", "critical"}),
        (make_alert(model="fraud-eu", severity="warning"), {"all", "fraud_eu"}),
        (make_alert(model="churn-v2"), {"all", "critical"}),
    ]
    expected_counts = dict.fromkeys(receivers, 0)
    for alert, names in cases:
        assert {n.name for n in notifiers.values() if n.accepts(alert)} == names
        results = deliver(notifiers.values(), alert)
        assert {r.name for r in results} == names and all(r.ok for r in results)
        for name in names:
            expected_counts[name] += 1
    assert {name: len(r.requests) for name, r in receivers.items()} == expected_counts


# ------------------------------------------------------------------------------ configuration
def test_the_issue_example_config_builds() -> None:
    config = yaml.safe_load(
        'notifiers:\n  ops: {type: webhook, url: "http://127.0.0.1:9000/hook"}\n'
    )
    (notifier,) = build_notifiers(config["notifiers"]).values()
    assert (notifier.name, notifier.type, notifier.severities, notifier.models) == (
        "ops",
        "webhook",
        None,
        None,
    )
    assert build_notifiers(None) == {} and build_notifiers({}) == {}


EMAIL = {"type": "email", "host": "127.0.0.1", "from": "a@example.com", "to": "b@example.com"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "sms"}, "notifier 'ops': field 'type': unknown type 'sms'"),
        ({"url": "http://x"}, "notifier 'ops': field 'type': required"),
        ({"type": "webhook"}, "notifier 'ops': field 'url': required"),
        (
            {"type": "webhook", "url": "ftp://x/y"},
            "notifier 'ops': field 'url': expected an http:// or https:// URL",
        ),
        (
            {"type": "webhook", "url": "http:///nohost"},
            "notifier 'ops': field 'url': expected an http:// or https:// URL",
        ),
        (
            {"type": "webhook", "urll": "http://x"},
            "notifier 'ops': unknown field(s) ['urll'] for type 'webhook'",
        ),
        (
            {"type": "slack", "url": "http://x", "secret": "s"},
            "notifier 'ops': unknown field(s) ['secret']",
        ),
        (
            {"type": "webhook", "url": "http://x", "severities": ["page"]},
            "notifier 'ops': field 'severities': unknown value 'page'",
        ),
        (
            {"type": "webhook", "url": "http://x", "models": []},
            "notifier 'ops': field 'models': must not be an empty list",
        ),
        (
            {"type": "webhook", "url": "http://x", "models": [3]},
            "notifier 'ops': field 'models': expected a non-empty string",
        ),
        (
            {"type": "webhook", "url": "http://x", "send_resolved": "no"},
            "notifier 'ops': field 'send_resolved': expected true or false",
        ),
        (
            {"type": "webhook", "url": "http://x", "headers": {"Bad Name": "v"}},
            "notifier 'ops': field 'headers': invalid header name",
        ),
        (
            {"type": "webhook", "url": "http://x", "headers": {"X-Watchkeeper-Signature": "v"}},
            "field 'headers': header 'X-Watchkeeper-Signature' is set by watchkeeper",
        ),
        (
            {"type": "webhook", "url": "http://x", "headers": {"X-A": "1\r\nX-B: 2"}},
            "field 'headers': header 'X-A': expected a one-line string",
        ),
        (
            {"type": "webhook", "url": "http://x", "secret": 12345678},
            "notifier 'ops': field 'secret': expected a string, got int",
        ),
        ({"type": "pagerduty"}, "notifier 'ops': field 'routing_key': required"),
        (
            {"type": "pagerduty", "routing_key": ""},
            "notifier 'ops': field 'routing_key': must not be empty",
        ),
        ({**EMAIL, "host": None}, "notifier 'ops': field 'host': required"),
        ({**EMAIL, "port": 70000}, "notifier 'ops': field 'port': expected a port number"),
        ({**EMAIL, "port": "25"}, "notifier 'ops': field 'port': expected a port number"),
        (
            {**EMAIL, "starttls": True, "ssl": True},
            "notifier 'ops': field 'ssl': cannot be true together with 'starttls'",
        ),
        (
            {**EMAIL, "password": "pw"},
            "notifier 'ops': field 'username': required when 'password' is set",
        ),
        (
            {**EMAIL, "to": ["ok@example.com", "not-an-address"]},
            "notifier 'ops': field 'to': expected email addresses",
        ),
        ({**EMAIL, "to": None}, "notifier 'ops': field 'to': required"),
        ({**EMAIL, "from": "me"}, "notifier 'ops': field 'from': expected an email address"),
        (
            {"type": "log", "level": "debug"},
            "notifier 'ops': unknown field(s) ['level'] for type 'log'",
        ),
        ("webhook", "notifier 'ops': expected a mapping with a 'type' field"),
    ],
)
def test_config_errors_name_the_notifier_and_the_field(spec: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        build_notifiers({"ops": spec})
    assert str(info.value).startswith(message) or message in str(info.value), str(info.value)
    assert "12345678" not in str(info.value)  # a secret's value is never echoed


def test_config_that_is_not_a_mapping() -> None:
    with pytest.raises(InputError, match="notifiers: expected a mapping"):
        build_notifiers([{"type": "log"}])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="notifier name must be a non-empty string"):
        build_notifiers({"": {"type": "log"}})


def test_email_port_defaults_follow_the_transport() -> None:
    ports = [
        one({**EMAIL, **extra}).port  # type: ignore[attr-defined]
        for extra in ({}, {"starttls": True}, {"ssl": True}, {"port": 2525})
    ]
    assert ports == [25, 587, 465, 2525]


# ------------------------------------------------------------------------------ docs
def test_every_type_and_field_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Notifiers") :]
    for kind, fields in FIELDS.items():
        assert f"### `{kind}`" in section, f"type {kind} has no section in docs/alerts.md"
        for name in fields:
            assert f"`{name}`" in section, f"{kind}.{name} is not documented"
        for name in NOTIFIER_TYPES[kind].secrets:
            assert f"`{name}_file`" in section, f"{kind}.{name}_file is not documented"
    for name in ("type", *ROUTING_FIELDS):
        assert f"`{name}`" in section
    assert text.startswith("# Alerts\n")


def test_formats_of_a_resolved_alert_name_the_state() -> None:
    alert = make_alert(state="resolved", resolved_at=1714562000.0)
    assert formats.email_subject(alert).endswith("(resolved)")
    assert formats.slack_message(alert)["text"].endswith("(resolved)")
    resolved = datetime.fromtimestamp(alert["resolved_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert f"Resolved: {resolved}" in formats.email_text(alert)


def test_the_documented_example_config_routes_as_the_docs_say() -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)[0]
    notifiers = build_notifiers(yaml.safe_load(example)["notifiers"])
    assert {n.type for n in notifiers.values()} == set(FIELDS)

    def routed(alert: dict[str, Any]) -> set[str]:
        return {n.name for n in notifiers.values() if n.accepts(alert)}

    assert routed(make_alert(model="fraud-eu")) == {"ops", "team-slack", "oncall", "mail", "audit"}
    assert routed(make_alert(model="pricing", severity="warning")) == {"ops", "mail", "audit"}
    assert (
        "a critical alert of model `fraud-eu` goes to `ops`, `team-slack`, `oncall`, `mail` and\n`audit`"
        in text
    )
