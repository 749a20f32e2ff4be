"""What each notifier sends, built from one alert dict: pure functions, no network.

The alert dict is the one the alert engine passes (see ``docs/alerts.md``): ``id``,
``monitor``, ``model``, ``version``, ``segment``, ``target``, ``severity``, ``state``,
``metric``, ``value``, ``condition``, ``threshold``, ``window_start``, ``window_seconds``,
``sample_size``, ``top_features``, ``started_at``, ``resolved_at``, ``summary``, ``url``.
Names of models, features and segments come from production data, so every format escapes
them for its medium: HTML for email, ``& < >`` for Slack.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from watchkeeper.errors import InputError

SEVERITIES = ("warning", "critical")
STATES = ("firing", "resolved")
MAX_FEATURES = 5  # top features shown in Slack, email and PagerDuty details
PAGERDUTY_SUMMARY_MAX = 1024
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
NO_SEGMENT = ("", "*")  # the engine's names for "no segments" and "all segments"


def check_alert(alert: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` naming the field when ``alert`` cannot be formatted."""
    for key in ("monitor", "model", "metric"):
        if not isinstance(alert.get(key), str) or not alert[key]:
            raise InputError(f"alert field {key!r}: expected a non-empty string")
    if alert.get("severity") not in SEVERITIES:
        raise InputError(f"alert field 'severity': expected one of {list(SEVERITIES)}")
    if alert.get("state") not in STATES:
        raise InputError(f"alert field 'state': expected one of {list(STATES)}")


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and tuples as lists, so strict JSON holds it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def to_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value`` (after :func:`json_safe`)."""
    return json.dumps(
        json_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# ------------------------------------------------------------------------------ text pieces
def number(value: Any) -> str:
    """A metric value for people: 4 significant digits, ``n/a`` when missing.

    >>> number(0.8123456), number(12345.0), number(None)
    ('0.8123', '1.234e+04', 'n/a')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def duration(seconds: Any) -> str:
    """``3600`` → ``1 h``; the largest unit that divides the window.

    >>> duration(3600), duration(5400), duration(86400), duration(45)
    ('1 h', '90 min', '1 d', '45 s')
    """
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "n/a"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{number(seconds)} s"


def utc(timestamp: Any, *, iso: bool = False) -> str:
    """Unix seconds as ``2024-05-01 10:00 UTC``, or ISO-8601 with ``iso``.

    >>> utc(1714557600), utc(1714557600.5, iso=True)
    ('2024-05-01 10:00 UTC', '2024-05-01T10:00:00.500+00:00')
    """
    if not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
        return "n/a"
    moment = datetime.fromtimestamp(timestamp, UTC)
    return (
        moment.isoformat(timespec="milliseconds") if iso else moment.strftime("%Y-%m-%d %H:%M UTC")
    )


def one_line(text: Any) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def subject(alert: Mapping[str, Any]) -> str:
    """``CRITICAL churn accuracy <= 0.85``: severity, model, segment, metric, target, condition.

    >>> subject({"severity": "critical", "model": "churn", "metric": "accuracy",
    ...          "target": "", "segment": "*", "condition": "<= 0.85"})
    'CRITICAL churn accuracy <= 0.85'
    """
    parts = [str(alert["severity"]).upper(), str(alert["model"])]
    if alert.get("segment") not in (*NO_SEGMENT, None):
        parts.append(f"[{alert['segment']}]")
    parts.append(str(alert["metric"]))
    if alert.get("target"):
        parts.append(str(alert["target"]))
    if alert.get("condition"):
        parts.append(str(alert["condition"]))
    return one_line(" ".join(parts))


def details(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The labelled facts every human-readable format shows, unescaped."""
    version = alert.get("version")
    rows = [
        ("Severity", str(alert["severity"]).upper()),
        ("State", str(alert["state"])),
        ("Model", f"{alert['model']}" + (f" (version {version})" if version else "")),
    ]
    if alert.get("segment") not in (*NO_SEGMENT, None):
        rows.append(("Segment", str(alert["segment"])))
    metric = str(alert["metric"]) + (f" of {alert['target']}" if alert.get("target") else "")
    rows.append(("Metric", metric))
    value = number(alert.get("value"))
    if alert.get("condition"):
        value += f" (alert when {alert['condition']})"
    rows.append(("Value", value))
    window = f"{utc(alert.get('window_start'))}, {duration(alert.get('window_seconds'))}"
    if isinstance(alert.get("sample_size"), int):
        window += f", {alert['sample_size']:,} samples"
    rows.append(("Window", window))
    rows.append(("Started", utc(alert.get("started_at"))))
    if alert.get("resolved_at") is not None:
        rows.append(("Resolved", utc(alert.get("resolved_at"))))
    rows.append(("Monitor", str(alert["monitor"])))
    return rows


def top_features(alert: Mapping[str, Any]) -> list[str]:
    """``age: statistic 0.31 (threshold 0.12)`` per top feature, at most MAX_FEATURES, raw."""
    features = alert.get("top_features") or []
    lines = [
        f"{f.get('feature')}: statistic {number(f.get('statistic'))}"
        f" (threshold {number(f.get('threshold'))})"
        for f in features[:MAX_FEATURES]
        if isinstance(f, Mapping)
    ]
    if len(features) > MAX_FEATURES:
        lines.append(f"and {len(features) - MAX_FEATURES} more")
    return lines


# ------------------------------------------------------------------------------ the formats
def webhook_body(alert: Mapping[str, Any]) -> bytes:
    """``{"type": "watchkeeper.alert", "alert": {...}}`` as compact UTF-8 JSON."""
    check_alert(alert)
    return to_json({"type": "watchkeeper.alert", "alert": dict(alert)})


def slack_escape(text: Any) -> str:
    """Slack's three control characters as entities, so data cannot format, link or ping.

    >>> slack_escape("<!channel> & co")
    '&lt;!channel&gt; &amp; co'
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(alert: Mapping[str, Any]) -> str | None:
    """The alert's ``url`` when it is an http(s) link, else None (no ``javascript:`` links)."""
    url = alert.get("url")
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, ``…`` marking a cut; never half an ``&...;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def slack_message(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications, fallback) and ``blocks``."""
    check_alert(alert)
    icon = (
        ":white_check_mark:"
        if alert["state"] == "resolved"
        else (":red_circle:" if alert["severity"] == "critical" else ":warning:")
    )
    title = f"{subject(alert)} ({alert['state']})"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(slack_escape(title), SLACK_HEADER_MAX)},
        }
    ]
    if alert.get("summary"):
        blocks.append(_mrkdwn_section(f"{icon} {slack_escape(one_line(alert['summary']))}"))
    blocks.append(
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{k}*\n{slack_escape(v)}", 2000)}
                for k, v in details(alert)[:10]  # Slack allows at most 10 fields
            ],
        }
    )
    features = top_features(alert)
    if features:
        lines = "\n".join(f"• {slack_escape(line)}" for line in features)
        blocks.append(_mrkdwn_section(f"*Top features*\n{lines}"))
    context = f"watchkeeper alert {alert.get('id')}"
    if link(alert):
        context += f" · <{slack_escape(link(alert))}|open in watchkeeper>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": slack_escape(title), "blocks": blocks}


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SLACK_TEXT_MAX)}}


def dedup_key(alert: Mapping[str, Any]) -> str:
    """One key per monitor, model, version, segment and target: a resolve finds its trigger.

    >>> a = {"monitor": "acc", "model": "churn", "version": "v1", "segment": "*", "target": ""}
    >>> dedup_key(a) == dedup_key({**a, "id": 7, "state": "resolved"}), len(dedup_key(a))
    (True, 52)
    """
    parts = [alert.get(k) for k in ("monitor", "model", "version", "segment", "target")]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
    return f"watchkeeper-{digest[:40]}"


def pagerduty_event(
    alert: Mapping[str, Any], *, routing_key: str, source: str = "watchkeeper"
) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: ``trigger`` while firing, ``resolve`` once resolved.

    A resolve carries only the routing key, the action and the dedup key, as the API asks.
    """
    check_alert(alert)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "resolve" if alert["state"] == "resolved" else "trigger",
        "dedup_key": dedup_key(alert),
    }
    if event["event_action"] == "resolve":
        return event
    summary = one_line(alert.get("summary") or subject(alert))
    custom = {
        k: alert.get(k)
        for k in (
            "id",
            "monitor",
            "model",
            "version",
            "segment",
            "target",
            "metric",
            "value",
            "condition",
            "threshold",
            "window_start",
            "window_seconds",
            "sample_size",
        )
    }
    if alert.get("top_features"):
        custom["top_features"] = list(alert["top_features"])[:MAX_FEATURES]
    event["payload"] = {
        "summary": _clip(summary, PAGERDUTY_SUMMARY_MAX),
        "source": source,
        "severity": alert["severity"],  # the two names exist in PagerDuty as they are
        "timestamp": utc(alert.get("started_at"), iso=True),
        "component": str(alert["model"]),
        "group": str(alert["monitor"]),
        "class": str(alert["metric"]),
        "custom_details": json_safe(custom),
    }
    event["client"] = "watchkeeper"
    if link(alert):
        event["client_url"] = link(alert)
        event["links"] = [{"href": link(alert), "text": "Model in watchkeeper"}]
    return event


def email_subject(alert: Mapping[str, Any], prefix: str = "[watchkeeper]") -> str:
    """``[watchkeeper] CRITICAL churn accuracy <= 0.85 (firing)``, on one line."""
    check_alert(alert)
    return one_line(f"{prefix} {subject(alert)} ({alert['state']})")


def email_text(alert: Mapping[str, Any]) -> str:
    """The plain-text part of the email."""
    check_alert(alert)
    lines = [f"{subject(alert)} ({alert['state']})", ""]
    if alert.get("summary"):
        lines += [one_line(alert["summary"]), ""]
    width = max(len(k) for k, _ in details(alert)) + 1
    lines += [f"{k + ':':<{width}} {v}" for k, v in details(alert)]
    features = top_features(alert)
    if features:
        lines += ["", "Top features:", *(f"  - {line}" for line in features)]
    if link(alert):
        lines += ["", f"Open in watchkeeper: {link(alert)}"]
    return "\n".join(lines) + "\n"


def email_html(alert: Mapping[str, Any]) -> str:
    """The HTML part of the email; every value is escaped."""
    check_alert(alert)
    e = html.escape
    colour = (
        "#2e7d32"
        if alert["state"] == "resolved"
        else ("#c62828" if alert["severity"] == "critical" else "#ef6c00")
    )
    parts = [
        '<!DOCTYPE html><html><body style="font-family:sans-serif">',
        f'<h2 style="color:{colour}">{e(subject(alert))} ({e(str(alert["state"]))})</h2>',
    ]
    if alert.get("summary"):
        parts.append(f"<p>{e(one_line(alert['summary']))}</p>")
    parts.append("<table>")
    parts += [f'<tr><th align="left">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in details(alert)]
    parts.append("</table>")
    features = top_features(alert)
    if features:
        items = "".join(f"<li>{e(line)}</li>" for line in features)
        parts.append(f"<h3>Top features</h3><ul>{items}</ul>")
    url = link(alert)
    if url:
        parts.append(f'<p><a href="{e(url)}">Open in watchkeeper</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def log_record(alert: Mapping[str, Any]) -> str:
    """The one line the log notifier writes: JSON of the alert under ``watchkeeper.alert``."""
    check_alert(alert)
    return to_json({"event": "watchkeeper.alert", **alert}).decode()
