"""systemd's service notification protocol (sd_notify(3)): readiness, watchdog, status.

systemd passes ``NOTIFY_SOCKET`` (a datagram socket path, ``@`` for the abstract namespace) to a
``Type=notify`` service, and ``WATCHDOG_USEC`` (with ``WATCHDOG_PID``) when ``WatchdogSec=`` is
set. The protocol is one datagram of ``KEY=value`` lines per message, so it is written here in
a few lines: the Python bindings (systemd-python, cysystemd) need libsystemd headers and a
compiler, and the small pure-Python packages are unmaintained. Outside systemd every call is a
no-op, and a failed send is logged once, never raised: notification must not stop recording.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to the socket systemd gave this process (if any)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_seconds = _watchdog_seconds(env)
        self._warned = False

    @property
    def enabled(self) -> bool:
        """Tell whether systemd listens (``NOTIFY_SOCKET`` is set)."""
        return self.address is not None

    def ready(self, status: str | None = None) -> None:
        """Tell systemd that start-up is complete (``READY=1``)."""
        self.send("READY=1", status)

    def watchdog(self) -> None:
        """Tell systemd the service is alive (``WATCHDOG=1``)."""
        self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> None:
        """Tell systemd the service is stopping (``STOPPING=1``)."""
        self.send("STOPPING=1", status)

    def status(self, text: str) -> None:
        """Set the one-line status `systemctl status` shows."""
        self.send(None, text)

    def send(self, state: str | None, status: str | None = None) -> None:
        """Send one message made of ``state`` and a ``STATUS=`` line (either may be None)."""
        if self.address is None:
            return
        lines = [line for line in (state, status and "STATUS=" + _one_line(status)) if line]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning("cannot notify systemd at %s: %s", self.address, exc)


def _socket_address(value: str) -> str | None:
    if not value or not (value.startswith("/") or value.startswith("@")):
        return None  # unset, or a vsock address this service does not support
    return "\0" + value[1:] if value.startswith("@") else value


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    # WATCHDOG_PID names the process the watchdog is for: a child that inherited the
    # environment (ffmpeg never reads it, but a helper script might) must not ping.
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
