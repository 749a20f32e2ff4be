"""Typed reads of one notifier's settings: every error names the notifier and the field, and
never echoes a value that may be a secret.

A secret field ``key`` may instead be given as ``key_file``: the path of a file holding the
value (a trailing newline is dropped), as Docker and Kubernetes mount secrets.

>>> f = Fields("ops", {"url": "http://127.0.0.1:9000/hook", "port": 0})
>>> f.url("url")
'http://127.0.0.1:9000/hook'
>>> f.port("port")
Traceback (most recent call last):
...
watchkeeper.errors.InputError: notifier 'ops': field 'port': expected a port number 1-65535, got 0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from watchkeeper.errors import InputError

FILE_SUFFIX = "_file"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110)
_ADDRESS = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+$")


class Fields:
    """The settings of notifier ``name``; ``secrets`` are the fields that may come from files."""

    def __init__(self, name: str, spec: Mapping[str, Any], secrets: Iterable[str] = ()) -> None:
        self.name, self.spec = name, dict(spec)
        for key in secrets:
            self._read_secret_file(key)

    def _read_secret_file(self, key: str) -> None:
        path = self.spec.pop(key + FILE_SUFFIX, None)
        if path is None:
            return
        if key in self.spec:
            raise self.fail(key, f"give either {key!r} or {key + FILE_SUFFIX!r}, not both")
        if not isinstance(path, str) or not path.strip():
            raise self.fail(key + FILE_SUFFIX, f"expected the path of a file, got {path!r}")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise self.fail(key + FILE_SUFFIX, f"cannot read {path}: {reason}") from None
        self.spec[key] = text.removesuffix("\n").removesuffix("\r")

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

    def headers(self, key: str, *, reserved: Iterable[str] = ()) -> dict[str, str]:
        value = self.spec.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping of header name to value, got {value!r}")
        taken = {h.lower() for h in reserved}
        for name, text in value.items():
            if not isinstance(name, str) or not _TOKEN.match(name):
                raise self.fail(key, f"invalid header name {name!r}")
            if name.lower() in taken:
                raise self.fail(key, f"header {name!r} is set by watchkeeper")
            if not isinstance(text, str) or "\n" in text or "\r" in text:
                raise self.fail(key, f"header {name!r}: expected a one-line string")
        return dict(value)
