"""One error hierarchy. Each error carries its HTTP status and CLI exit code."""

from __future__ import annotations


class WatchkeeperError(Exception):
    """Base class of every error watchkeeper raises on purpose."""

    http_status: int = 500
    exit_code: int = 2


class InputError(WatchkeeperError, ValueError):
    """The caller gave data or arguments watchkeeper cannot use (bad file, unknown column, ...)."""

    http_status = 400
    exit_code = 2


class SchemaError(InputError):
    """A schema is malformed or does not match the data."""


class ProfileMismatchError(InputError):
    """Two profiles that do not share bins or types were combined."""
