"""Fixtures of the alert tests: real loopback receivers (see ``receivers.py``)."""

from receivers import (  # noqa: F401 - pytest finds fixtures by name in the conftest
    make_http_receiver,
    make_smtp_receiver,
    smtp_receiver,
    webhook_receiver,
)
