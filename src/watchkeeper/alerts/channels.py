"""The five notifiers: webhook (HMAC-signed JSON), Slack, PagerDuty, email (SMTP) and the log.

Each class carries its settings (``fields``, ``secrets``, ``from_config``); a new notifier type
is one class here and its entry in :data:`NOTIFIER_TYPES`.

Standard library only: ``urllib.request`` for HTTP (environment proxies honoured, redirects
not followed: a redirected POST would lose its body), ``smtplib`` for email. Every network
operation has a timeout. Error messages name the receiver by scheme, host and port only:
Slack and many webhook URLs carry a secret in their path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

from watchkeeper.alerts import formats
from watchkeeper.alerts.delivery import Notifier
from watchkeeper.alerts.fields import Fields

alerts_log = logging.getLogger("watchkeeper.alerts")

SIGNATURE_HEADER = "X-Watchkeeper-Signature"
TIMESTAMP_HEADER = "X-Watchkeeper-Timestamp"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
EXCERPT = 200  # characters of a failed response's body kept in the error message
RETRYABLE_4XX = (408, 425, 429)
RESERVED_HEADERS = ("content-type", SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower())


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` of ``"{timestamp}.".encode() + body``.

    The same as ``printf '1714557600.{"type":"watchkeeper.alert"}' | openssl dgst -sha256
    -hmac s3cret``:

    >>> sign("s3cret", "1714557600", b'{"type":"watchkeeper.alert"}')
    'sha256=b576be85957b6a9138fdf798d3d3a8df71c1f601241e3b8e7de0f24af4a45197'
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def redact(url: str) -> str:
    """``scheme://host:port``: what an error message may show of a receiver's URL.

    >>> redact("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com'
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then surfaces as an HTTPError: not delivered


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(
    notifier: Notifier, url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> None:
    """POST ``body``; return on 2xx, else raise :class:`NotifierError` with status and body."""
    request = urllib.request.Request(url, data=body, method="POST")
    for key, value in {"Content-Type": "application/json", **headers}.items():
        request.add_header(key, value)
    request.add_header("User-Agent", "watchkeeper-notifier")
    where = redact(url)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            text = formats.one_line(exc.read(4 * EXCERPT).decode(errors="replace"))[:EXCERPT]
        status = exc.code
        raise notifier.error(
            f"HTTP {status} from {where}" + (f": {text}" if text else ""),
            retryable=status >= 500 or status in RETRYABLE_4XX,
            retry_after=_seconds(exc.headers.get("Retry-After")),
        ) from None
    except urllib.error.URLError as exc:
        raise notifier.error(f"cannot reach {where}: {_reason(exc.reason, timeout)}") from None
    except (TimeoutError, OSError) as exc:
        raise notifier.error(f"no answer from {where}: {_reason(exc, timeout)}") from None


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: use the caller's own backoff
        return None


class WebhookNotifier(Notifier):
    """POSTs ``{"type": "watchkeeper.alert", "alert": {...}}``, signed when a secret is set."""

    type = "webhook"
    fields = ("url", "secret", "headers")
    secrets = ("secret",)

    @classmethod
    def from_config(cls, name: str, f: Fields, routing: Mapping[str, Any]) -> Notifier:
        return cls(
            name,
            url=f.url("url", required=True),
            secret=f.string("secret"),
            headers=f.headers("headers", reserved=RESERVED_HEADERS),
            **routing,
        )

    def __init__(
        self,
        name: str,
        *,
        url: str,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        **routing: Any,
    ) -> None:
        super().__init__(name, **routing)
        self.url, self.secret, self.headers = url, secret, dict(headers or {})

    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        body = formats.webhook_body(alert)
        headers = dict(self.headers)
        if self.secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        post(self, self.url, body, headers, timeout)


class SlackNotifier(Notifier):
    """POSTs a Slack incoming-webhook message (``text`` + ``blocks``)."""

    type = "slack"
    fields = ("url",)
    secrets = ("url",)  # the incoming webhook's path is its secret

    @classmethod
    def from_config(cls, name: str, f: Fields, routing: Mapping[str, Any]) -> Notifier:
        return cls(name, url=f.url("url", required=True), **routing)

    def __init__(self, name: str, *, url: str, **routing: Any) -> None:
        super().__init__(name, **routing)
        self.url = url

    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        post(self, self.url, formats.to_json(formats.slack_message(alert)), {}, timeout)


class PagerDutyNotifier(Notifier):
    """POSTs a PagerDuty Events API v2 event: trigger while firing, resolve once resolved."""

    type = "pagerduty"
    fields = ("routing_key", "url", "source")
    secrets = ("routing_key",)

    @classmethod
    def from_config(cls, name: str, f: Fields, routing: Mapping[str, Any]) -> Notifier:
        return cls(
            name,
            routing_key=f.string("routing_key", required=True),
            url=f.url("url") or PAGERDUTY_URL,
            source=f.string("source") or "watchkeeper",
            **routing,
        )

    def __init__(
        self,
        name: str,
        *,
        routing_key: str,
        url: str = PAGERDUTY_URL,
        source: str = "watchkeeper",
        **routing: Any,
    ) -> None:
        super().__init__(name, **routing)
        self.routing_key, self.url, self.source = routing_key, url, source

    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        event = formats.pagerduty_event(alert, routing_key=self.routing_key, source=self.source)
        post(self, self.url, formats.to_json(event), {}, timeout)


class EmailNotifier(Notifier):
    """Sends a plain-text + HTML email over SMTP (optionally STARTTLS or implicit TLS)."""

    type = "email"
    fields = (
        "host",
        "port",
        "starttls",
        "ssl",
        "username",
        "password",
        "from",
        "to",
        "subject_prefix",
    )
    secrets = ("password",)

    @classmethod
    def from_config(cls, name: str, f: Fields, routing: Mapping[str, Any]) -> Notifier:
        starttls, use_ssl = f.boolean("starttls", False), f.boolean("ssl", False)
        if starttls and use_ssl:
            raise f.fail("ssl", "cannot be true together with 'starttls': choose one")
        username, password = f.string("username"), f.string("password")
        if password is not None and username is None:
            raise f.fail("username", "required when 'password' is set")
        to = f.strings("to", address=True)
        if to is None:
            raise f.fail("to", "required: an address or a list of addresses")
        return cls(
            name,
            host=f.string("host", required=True),
            port=f.port("port"),
            starttls=starttls,
            use_ssl=use_ssl,
            username=username,
            password=password,
            sender=f.address("from"),
            to=to,
            subject_prefix=_default(f.string("subject_prefix", blank=True), "[watchkeeper]"),
            **routing,
        )

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        to: list[str],
        port: int | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        username: str | None = None,
        password: str | None = None,
        subject_prefix: str = "[watchkeeper]",
        **routing: Any,
    ) -> None:
        super().__init__(name, **routing)
        self.host, self.sender, self.to = host, sender, list(to)
        self.port = port if port is not None else (465 if use_ssl else 587 if starttls else 25)
        self.starttls, self.use_ssl = starttls, use_ssl
        self.username, self.password = username, password
        self.subject_prefix = subject_prefix

    def message(self, alert: Mapping[str, Any]) -> EmailMessage:
        """The email for ``alert``: subject, a text part and an HTML alternative."""
        msg = EmailMessage()
        msg["Subject"] = formats.email_subject(alert, self.subject_prefix)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="watchkeeper")
        msg["X-Watchkeeper-Alert"] = f"{alert.get('id')} {alert['state']}"
        msg.set_content(formats.email_text(alert))
        msg.add_alternative(formats.email_html(alert), subtype="html")
        return msg

    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        msg = self.message(alert)
        where = f"SMTP server {self.host}:{self.port}"
        context = ssl.create_default_context()
        try:
            if self.use_ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=timeout, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with client:
                if self.starttls:
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password or "")
                refused = client.send_message(msg, self.sender, self.to)
        except smtplib.SMTPNotSupportedError as exc:
            raise self.error(f"{where}: {exc}", retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise self.error(
                f"{where} refused every recipient: {_refusals(exc.recipients)}", retryable=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise self.error(
                f"{where} answered {exc.smtp_code} {formats.one_line(reply)[:EXCERPT]}",
                retryable=exc.smtp_code < 500,
            ) from None
        except (smtplib.SMTPException, ssl.SSLError) as exc:
            raise self.error(f"{where}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise self.error(f"cannot reach {where}: {_reason(exc, timeout)}") from None
        if refused:  # delivered to the others: a retry would send them a duplicate
            alerts_log.warning(
                "notifier %r (email): %s refused %s", self.name, where, _refusals(refused)
            )


def _default(value: str | None, default: str) -> str:
    return default if value is None else value


def _refusals(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{addr} ({code} {reply.decode(errors='replace')})"
        for addr, (code, reply) in recipients.items()
    )


class LogNotifier(Notifier):
    """Writes one JSON line per alert to the ``watchkeeper.alerts`` logger.

    Level: ERROR for a firing critical alert, WARNING for a firing warning, INFO once resolved.
    The alert dict is also attached to the record as ``record.alert`` for structured handlers.
    """

    type = "log"

    def send(self, alert: Mapping[str, Any], *, timeout: float = 10.0) -> None:
        line = formats.log_record(alert)
        if alert["state"] == "resolved":
            level = logging.INFO
        else:
            level = logging.ERROR if alert["severity"] == "critical" else logging.WARNING
        alerts_log.log(level, "%s", line, extra={"alert": dict(alert)})


# the registry: settings ``type:`` → class
NOTIFIER_TYPES: dict[str, type[Notifier]] = {
    cls.type: cls
    for cls in (WebhookNotifier, SlackNotifier, PagerDutyNotifier, EmailNotifier, LogNotifier)
}
