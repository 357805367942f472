"""Exceptions of the hub, each with a message a user can act on."""

from __future__ import annotations


class RecorderError(Exception):
    """Base class of the hub's own errors."""


class ConfigError(RecorderError):
    """The configuration file or a flag is wrong; the message names the key."""


class StorageLocked(RecorderError):
    """Another hub process already records into this storage folder."""


class StorageMismatch(RecorderError):
    """The storage folder is not the one the catalog records into (see store/identity.py)."""


class IngestRejected(RecorderError):
    """An ingest request was refused; carries the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
