"""The hub under systemd (Type=notify): READY=1, WATCHDOG=1 from its loop, STATUS=, STOPPING=1."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

from nvrlib.sdnotify import Notifier
from tests.support.notify import NotifySocket
from tests.support.procs import Hub

WATCHDOG_USEC = 600_000  # pings every 0.3 s


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_hub_notifies_systemd_and_its_watchdog_stops_while_it_is_stalled(tmp_path, notify_socket):
    hub = Hub(tmp_path, env={"NOTIFY_SOCKET": notify_socket.path,
                             "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    hub.start()
    try:
        # the start-up log names the ffmpeg that records, its version and why it was chosen
        assert re.search(r"ffmpeg \S+ at /\S+ \(", hub.output), hub.output
        notify_socket.wait_for("READY=1", timeout=10)
        assert any(m.startswith("READY=1\nSTATUS=recording 0 cameras") for _, m in notify_socket.messages)
        first = notify_socket.wait_for("WATCHDOG=1", timeout=5)
        notify_socket.pump(1.5)
        assert notify_socket.pings_between(first, first + 1.5) >= 3  # every 0.3 s

        assert hub.process is not None
        hub.process.proc.send_signal(signal.SIGSTOP)  # a hung hub: its loop stops
        stopped_at = time.monotonic()
        notify_socket.pump(2.0)
        # a datagram sent just before the stop may arrive a moment after it
        assert notify_socket.pings_between(stopped_at + 0.2, stopped_at + 2.0) == 0
        hub.process.proc.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        notify_socket.pump(1.5)
        assert notify_socket.pings_between(resumed_at, resumed_at + 1.5) >= 2
    finally:
        if hub.process is not None:
            hub.process.proc.send_signal(signal.SIGCONT)
        assert hub.stop() == 0
    notify_socket.pump(0.2)
    assert any(m.startswith("STOPPING=1") for _, m in notify_socket.messages)


def test_notifier_is_silent_outside_systemd_and_honours_watchdog_pid():
    assert not Notifier({}).enabled
    Notifier({}).ready()  # a no-op, not an error
    assert Notifier({"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "2000000",
                     "WATCHDOG_PID": str(os.getpid())}).watchdog_seconds == 2.0
    # the watchdog was set up for another process (a parent that exec'd us kept its env)
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
    assert Notifier({"WATCHDOG_USEC": "nonsense"}).watchdog_seconds is None


def test_abstract_socket_address(tmp_path):
    name = f"nvr-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("recording  2\ncameras")
        assert listener.recv(100) == b"STATUS=recording 2 cameras"
