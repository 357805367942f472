"""A loopback TCP proxy whose link a test can cut and restore, like a network outage.

``cut()`` resets every connection in flight (both ends see the link die) and then either
refuses new connections (the listening port closes: ECONNREFUSED) or blackholes them (they
are accepted but nothing is forwarded either way, as a link that silently eats packets).
``restore()`` forwards again; blackholed connections are reset then, as they never reached
the far end. Threads only; 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

PASS, REFUSE, BLACKHOLE = "pass", "refuse", "blackhole"
POLL = 0.1
RECV_SIZE = 65536


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the peer gets a reset rather than a clean end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One proxied connection: a client socket, its upstream socket and two pumps."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.dead = threading.Event()
        self.bytes_up = 0
        self.threads = [
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        src.settimeout(POLL)
        while not self.dead.is_set():
            try:
                data = src.recv(RECV_SIZE)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)  # pass a clean end on
                return
            try:
                dst.sendall(data)
            except OSError:
                break
            if up:
                self.bytes_up += len(data)
        self.kill()

    def kill(self) -> None:
        """Reset both ends."""
        if not self.dead.is_set():
            self.dead.set()
            _reset(self.client)
            _reset(self.upstream)


class TcpProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>, with a switch for outages."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target = ("127.0.0.1", target_port)
        self.mode = PASS
        self.links: list[_Link] = []
        self.held: list[socket.socket] = []  # blackholed connections
        self.accepted = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = self._listen(port)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)

    def start(self) -> TcpProxy:
        """Start accepting."""
        self._thread.start()
        return self

    def cut(self, new_connections: str = REFUSE) -> None:
        """Break every connection in flight and refuse or blackhole new ones."""
        assert new_connections in (REFUSE, BLACKHOLE)
        with self._lock:
            self.mode = new_connections
            links, self.links = self.links, []
            if new_connections == REFUSE and self._listener is not None:
                self._listener.close()  # nothing listens: connect() is refused
                self._listener = None
            elif new_connections == BLACKHOLE and self._listener is None:
                self._listener = self._listen(self.port)
        for link in links:
            link.kill()

    def restore(self) -> None:
        """Forward again."""
        with self._lock:
            self.mode = PASS
            held, self.held = self.held, []
            if self._listener is None:
                self._listener = self._listen(self.port)
        for sock in held:
            _reset(sock)

    def stop(self) -> None:
        """Stop accepting and reset everything."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            links, self.links = self.links, []
            held, self.held = self.held, []
        for link in links:
            link.kill()
        for sock in held:
            _reset(sock)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        sock.settimeout(POLL)
        return sock

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._stop.wait(POLL)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self._take(client)

    def _take(self, client: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            if self.mode != PASS:
                self.held.append(client)  # accepted, never read, never answered
                return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.links.append(_Link(client, upstream))
