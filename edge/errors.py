"""Exceptions of the edge, each with a message a user can act on."""

from __future__ import annotations

# Statuses that protocol.md calls configuration errors: retrying sooner will not help, so the
# edge waits the maximum backoff between tries (fixing the hub's config heals the stream).
CONFIG_ERROR_STATUSES = frozenset({400, 401, 415})


class EdgeError(Exception):
    """Base class of the edge's own errors."""


class ConfigError(EdgeError):
    """A command-line flag is wrong; the message names it."""


class SourceError(EdgeError):
    """A camera source cannot be opened or read."""


class HubError(EdgeError):
    """The stream to the hub failed; the edge reconnects with backoff."""

    is_config_error = False


class HubUnreachable(HubError):
    """The hub refused, reset, timed out or closed the connection."""


class HubTlsError(HubUnreachable):
    """The hub's certificate failed verification, or it speaks no TLS: fix the configuration."""

    is_config_error = True


class HubClosed(HubUnreachable):
    """A v2 hub ended the stream itself (shutdown, admin disconnect, a restarted recorder)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def restarted(self) -> bool:
        """Tell whether the hub restarted this camera's recorder (reconnect at once, quietly)."""
        return self.reason.startswith("recorder restarted")


class HubRejected(HubError):
    """The hub answered the ingest request with a status other than 200."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        text = f"hub answered {status} {reason}"
        super().__init__(f"{text}: {detail}" if detail else text)
        self.status = status
        self.reason = reason
        self.detail = detail

    @property
    def is_config_error(self) -> bool:  # type: ignore[override]
        """Tell whether the status means the hub or edge configuration must change."""
        return self.status in CONFIG_ERROR_STATUSES
