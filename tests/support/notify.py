"""A stand-in for systemd's NOTIFY_SOCKET: what a Type=notify service tells systemd."""

from __future__ import annotations

import os
import socket
import time


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; records (time, message)."""

    def __init__(self, path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []

    def pump(self, seconds: float) -> None:
        """Collect messages for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                pass

    def wait_for(self, needle: str, timeout: float) -> float:
        """Collect messages until one contains ``needle``; return when it came."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for at, message in self.messages:
                if needle in message.splitlines():
                    return at
            self.pump(0.1)
        raise AssertionError(f"no {needle!r} within {timeout} s: {self.messages}")

    def pings_between(self, start: float, end: float) -> int:
        """Count WATCHDOG=1 messages received in [start, end]."""
        return sum(1 for at, m in self.messages if start <= at <= end and "WATCHDOG=1" in m)

    def close(self) -> None:
        """Close and remove the socket."""
        self.sock.close()
        os.unlink(self.path)
