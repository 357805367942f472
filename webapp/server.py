"""The web app's HTTP(S) server: waitress, hardened against slow clients, with optional TLS.

Waitress reads every request on one event loop and gives a worker thread only a request that
has fully arrived, so a slow client costs a socket, not a thread. What it lacks, and this module
adds by subclassing its server and channel (docs/design/architecture.md, "The web server"):

- a deadline for a request's head (and a TLS handshake): a client that trickles a byte at a
  time is closed after HEAD_TIMEOUT seconds, however often it sends;
- a minimum rate for a request's body: after HEAD_TIMEOUT seconds of grace, a body that has
  arrived at less than MIN_BODY_RATE on average is cut, so a trickled body holds a connection
  no longer than a trickled head;
- a cap on the connections one address holds (reverse proxies in trusted_proxies are exempt),
  so a flood from one address cannot take the connections everyone else needs;
- TLS on the event loop (waitress has none): the handshake and every read and write are
  non-blocking, so a client that stalls its handshake holds no thread either.
"""

from __future__ import annotations

import collections
import logging
import socket
import ssl
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask

logger = logging.getLogger(__name__)

SERVER_IDENT = "nvr"  # the Server header
# Open connections in all; far below the process's file limit, far above what a household uses.
CONNECTION_LIMIT = 1000
# Connections one address may hold: a browser opens 6 per site; a few devices behind one NAT.
CONNECTIONS_PER_ADDRESS = 40
# Seconds a client has to send a request's head (and finish a TLS handshake).
HEAD_TIMEOUT = 10.0
# Bytes a second a request body must average (after HEAD_TIMEOUT of grace): a 5-MB face photo
# takes 10 minutes at this rate, a trickle of a byte a second is cut after HEAD_TIMEOUT.
MIN_BODY_RATE = 8 * 1024
# Seconds a kept-alive connection may sit idle between requests.
IDLE_TIMEOUT = 60.0
# How often the limits are checked (seconds): the head deadline is kept to within this.
CHECK_INTERVAL = 1.0


class ServerError(Exception):
    """The server cannot start as configured (bad certificate or key); the message says why."""


@dataclass(frozen=True)
class Limits:
    """What the server allows each client; the defaults suit a household or a small office."""

    connection_limit: int = CONNECTION_LIMIT
    per_address: int = CONNECTIONS_PER_ADDRESS
    head_timeout: float = HEAD_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    min_body_rate: float = MIN_BODY_RATE


class StreamingTask(WSGITask):
    """Waitress's WSGI task, telling a long response how much of it the client has not taken.

    A live stream (webapp/live/stream.py) must skip ahead for a viewer that does not keep up
    rather than pile its frames up in the server: ``environ["nvr.unsent_bytes"]()`` is what
    waits in the channel's buffers, and ``environ["nvr.limit_send_buffer"](n)`` caps the
    kernel's share (SO_SNDBUF), which would otherwise grow to megabytes and hide the backlog.
    """

    def get_environment(self) -> dict[str, Any]:
        """Waitress's environ plus the two hooks of a streaming response."""
        environ: dict[str, Any] = super().get_environment()
        channel = self.channel
        environ["nvr.unsent_bytes"] = lambda: channel.total_outbufs_len
        environ["nvr.limit_send_buffer"] = lambda size: channel.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return environ


class GuardedChannel(HTTPChannel):
    """Waitress's channel that remembers when the request head (and body) it receives began."""

    head_started = 0.0
    body_started = 0.0
    body_bytes = 0  # of the body being received, as they arrived
    task_class = StreamingTask

    def __init__(self, server: GuardedServer, sock: Any, addr: Any, adj: Any,
                 map: Any = None) -> None:
        self.opened_at = time.monotonic()
        self.addr = addr  # waitress sets it after registering the channel; the count needs it
        super().__init__(server, sock, addr, adj, map)

    def received(self, data: bytes) -> bool:
        """Note when a new request head (or body) starts, then let waitress parse the bytes."""
        if self.request is None:
            self.head_started = time.monotonic()
        in_body = self._receiving_body()
        result: bool = super().received(data)
        if self._receiving_body():
            if in_body:
                self.body_bytes += len(data)
            else:  # the head ended in this piece: the body's clock starts now
                self.body_started, self.body_bytes = time.monotonic(), 0
        return result

    def _receiving_body(self) -> bool:
        request = self.request
        return (request is not None and request.headers_finished and not request.completed
                and not request.error)

    def body_too_slow(self, now: float, grace: float, rate: float) -> bool:
        """Tell whether the body being received averages under ``rate`` after ``grace`` s."""
        return self._receiving_body() and now - self.body_started > grace + self.body_bytes / rate

    def receiving_head_since(self) -> float | None:
        """Return when the head now being received began (monotonic), or None if none is."""
        request = self.request
        if request is None or request.headers_finished or request.error:
            return None
        return self.head_started

    def add_channel(self, map: Any = None) -> None:
        """Register the channel and count it against its address."""
        super().add_channel(map)
        self.server.count_connection(self.addr, +1)

    def del_channel(self, map: Any = None) -> None:
        """Unregister the channel (once) and release its address's count."""
        registered = self._fileno in self.server.active_channels
        super().del_channel(map)
        if registered:
            self.server.count_connection(self.addr, -1)


class TlsChannel(GuardedChannel):
    """A guarded channel over a non-blocking TLS socket whose handshake happens on first read."""

    handshaken = False

    def receiving_head_since(self) -> float | None:
        """Count the TLS handshake as part of the first request's head."""
        if not self.handshaken:
            return self.opened_at
        return super().receiving_head_since()

    def handle_read(self) -> None:
        """Read decrypted bytes (finishing the handshake first); wait when TLS needs more."""
        try:
            data = self._read_decrypted()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # A record (or the handshake) is incomplete: the loop calls again. A finished
            # handshake with no request yet is an idle connection, like a plain one.
            self.handshaken = self.socket.version() is not None
            return
        except OSError as exc:  # ssl.SSLError included: a bad handshake, a reset
            logger.debug("TLS connection from %s closed: %s", self.addr, exc)
            self.handle_close()
            return
        if not data:
            self.connected = False
            self.handle_close()
            return
        self.last_activity = time.time()
        self.received(data)

    def _read_decrypted(self) -> bytes:
        data = self.socket.recv(self.adj.recv_bytes)
        self.handshaken = True
        # Decrypted bytes left in the TLS buffer make the socket look idle: take them now.
        while data and self.socket.pending():
            data += self.socket.recv(self.socket.pending())
        return data

    def send(self, data: bytes, do_close: bool = True) -> int:
        """Send what the TLS socket takes now; 0 when it must wait (waitress retries)."""
        try:
            return super().send(data, do_close)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return 0


class GuardedServer(TcpWSGIServer):
    """Waitress's TCP server with a per-address cap, a head deadline and optional TLS."""

    channel_class = GuardedChannel

    def __init__(self, app: Callable, *, limits: Limits, exempt: Container[str] = (),
                 tls: ssl.SSLContext | None = None, **adjustments: Any) -> None:
        self.limits = limits
        self.exempt = exempt
        self.tls = tls
        self.per_address: collections.Counter[str] = collections.Counter()
        self._capped: set[str] = set()
        if tls is not None:
            self.channel_class = TlsChannel
        super().__init__(app, **adjustments)

    def count_connection(self, addr: Any, delta: int) -> None:
        """Add ``delta`` to the open connections of the address of ``addr``."""
        host = _host(addr)
        count = self.per_address[host] + delta
        if count > 0:
            self.per_address[host] = count
        else:
            self.per_address.pop(host, None)
        if count < self.limits.per_address:
            self._capped.discard(host)

    def handle_accept(self) -> None:
        """Accept a connection unless its address already holds its share; wrap it in TLS."""
        try:
            accepted = self.accept()
        except OSError:
            return  # the client left before we got to it
        if accepted is None:
            return
        conn, addr = accepted
        addr = self.fix_addr(addr)
        host = _host(addr)
        if host not in self.exempt and self.per_address[host] >= self.limits.per_address:
            conn.close()
            if host not in self._capped:  # one line per episode, not one per connection
                self._capped.add(host)
                logger.warning("%s holds %d connections (the most one address may): refusing "
                               "more from it", host, self.per_address[host])
            return
        try:
            self.set_socket_options(conn)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True,
                                            do_handshake_on_connect=False)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def maintenance(self, now: float) -> None:
        """Close idle connections (waitress), those whose head is past its deadline and those
        whose body arrives too slowly."""
        super().maintenance(now)
        limits, clock = self.limits, time.monotonic()
        cutoff = clock - limits.head_timeout
        for channel in list(self.active_channels.values()):
            if channel.requests:
                continue  # a request is being answered
            started = channel.receiving_head_since()
            if started is not None and started < cutoff:
                channel.will_close = True
            elif channel.body_too_slow(clock, limits.head_timeout, limits.min_body_rate):
                logger.info("%s sent %d bytes of a request body in %.0f s (under %d bytes a "
                            "second): closing", _host(channel.addr), channel.body_bytes,
                            clock - channel.body_started, limits.min_body_rate)
                channel.will_close = True


def _host(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Return a server TLS context (TLS 1.2 or newer) for a PEM certificate chain and key."""
    for path in (cert, key):
        if not path.is_file():
            raise ServerError(f"TLS: no such file {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ServerError(f"TLS: cannot load the certificate {cert} with the key {key}: "
                          f"{exc}") from None
    return context


def create_server(app: Callable, *, host: str, port: int, threads: int,
                  tls: ssl.SSLContext | None = None, exempt: Container[str] = (),
                  limits: Limits = Limits()) -> GuardedServer:
    """Bind the guarded server for ``app`` on ``host``:``port`` (raises OSError if taken)."""
    return GuardedServer(
        app, limits=limits, exempt=exempt, tls=tls, host=host, port=port, threads=threads,
        ident=SERVER_IDENT, url_scheme="https" if tls is not None else "http",
        connection_limit=limits.connection_limit, channel_timeout=limits.idle_timeout,
        cleanup_interval=CHECK_INTERVAL,
        # poll(), not select(): select() cannot watch descriptors numbered 1024 or more.
        asyncore_use_poll=True,
        # Forwarded headers are judged by webapp.proxy (trusted proxies only), not dropped here.
        clear_untrusted_proxy_headers=False)
