"""A slowloris for tests and the bench: connections that send a request head a byte at a time.

One thread keeps every connection trickling (and reopens those the server closed, as a real
attacker would), so the test thread is free to probe the server meanwhile.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

PARTIAL_HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: nvr\r\nUser-Agent: slowloris\r\n"
TRICKLE_BYTE = b"X"


class Slowloris:
    """``count`` slow connections to ``port`` from the given source addresses, in turn."""

    def __init__(self, port: int, count: int, sources: list[str], interval: float = 0.5) -> None:
        self.port = port
        self.sources = [sources[i % len(sources)] for i in range(count)]
        self.interval = interval
        self.socks: list[socket.socket | None] = [None] * count
        self.opened = 0  # connections made in all (reopened ones included)
        self.refused = 0  # connections the server closed or would not take
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)

    def __enter__(self) -> Slowloris:
        for index in range(len(self.socks)):
            self._open(index)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self.socks:
            if sock is not None:
                sock.close()

    def alive(self) -> int:
        """Return how many connections are open on our side right now."""
        return sum(sock is not None for sock in self.socks)

    def _open(self, index: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.sources[index], 0))
            sock.settimeout(2)
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(PARTIAL_HEAD[:5])
            sock.setblocking(False)
        except OSError:
            sock.close()
            self.refused += 1
            return
        self.socks[index] = sock
        self.opened += 1

    def _trickle(self, index: int) -> None:
        sock = self.socks[index]
        if sock is None:
            self._open(index)
            return
        try:
            if sock.recv(1024, socket.MSG_PEEK) == b"":  # closed by the server
                raise ConnectionResetError
        except BlockingIOError:
            pass  # nothing to read: still open
        except OSError:
            self._drop(index)
            return
        try:
            sock.send(TRICKLE_BYTE)
        except BlockingIOError:
            pass
        except OSError:
            self._drop(index)

    def _drop(self, index: int) -> None:
        sock = self.socks[index]
        if sock is not None:
            sock.close()
        self.socks[index] = None
        self.refused += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            for index in range(len(self.socks)):
                if self._stop.is_set():
                    return
                self._trickle(index)
            self._stop.wait(self.interval)


def probe(url: str, source: str = "127.0.0.1", timeout: float = 5.0) -> float:
    """GET ``url`` from ``source``; return the seconds to its answer (``timeout`` + 1 if none).

    Any HTTP status counts: /api/v1/health says 503 while no hub runs, and that is an answer.
    """
    started = time.monotonic()
    host_port = url.split("/")[2]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout,
                                      source_address=(source, 0)) as sock:
            path = "/" + url.split("/", 3)[3]
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n"
                         .encode())
            status = sock.recv(64)
        if not status.startswith(b"HTTP/1.1 "):
            return timeout + 1
    except OSError:
        return timeout + 1
    return time.monotonic() - started

