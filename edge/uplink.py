"""The ingest protocol's client side: one chunked HTTP/1.1 POST of MPEG-TS per connection (v2)."""

from __future__ import annotations

import dataclasses
import http
import json
import logging
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Self

import h11

from .errors import HubClosed, HubRejected, HubUnreachable
from .tls import TlsSettings, wrap

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
# A send that cannot move a frame's chunk in this long means the hub or the link is stuck.
SEND_TIMEOUT = 10.0
RESPONSE_TIMEOUT = 3.0
RECV_SIZE = 65536
USER_AGENT = "nvr-edge/2"


@dataclasses.dataclass(frozen=True)
class HubAddress:
    """Where the hub listens, and the credentials and location the edge presents."""

    host: str
    port: int
    token: str | None = dataclasses.field(default=None, repr=False)
    location: str | None = None
    tls: TlsSettings | None = None  # None: plain TCP
    protocol: int = 3  # the live stream's: 3 (direct_uplink; 2 over TLS) or 2

    @property
    def netloc(self) -> str:
        """Return host:port for the Host header and for logs ([v6]:port for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def ingest_path(camera: str) -> str:
    """Return the request target for a camera (the name is validated by the CLI)."""
    return f"/ingest/v1/{camera}"


def request_headers(
    hub: HubAddress, epoch: float, *, mode: str = "live", backfill_id: str | None = None,
    spool: bool = False, dropped: float = 0.0, protocol: int = 2,
) -> list[tuple[str, str]]:
    """Return the ingest request's headers: auth, TS, location, epoch and v2's own (v3: the
    same without a body's framing; direct_uplink adds the upgrade)."""
    headers = [("Host", hub.netloc), ("User-Agent", USER_AGENT)]
    if hub.token:
        headers.append(("Authorization", f"Bearer {hub.token}"))
    headers.append(("Content-Type", "video/mp2t"))
    if protocol == 2:
        headers.append(("Transfer-Encoding", "chunked"))
    if hub.location:
        headers.append(("X-NVR-Location", hub.location))
    headers.append(("X-NVR-Stream-Epoch", f"{epoch:.3f}"))
    headers += [("X-NVR-Protocol", str(protocol)), ("X-NVR-Mode", mode)]
    if backfill_id:
        headers.append(("X-NVR-Backfill-Id", backfill_id))
    if spool:
        headers.append(("X-NVR-Spool", "1"))
    if dropped > 0:
        headers.append(("X-NVR-Spool-Dropped", f"{dropped:.3f}"))
    return headers


class AckLines:
    """The hub's ndjson lines of one request (versions 2 and 3): acks, ``done``, ``closed``
    and version 3's ``live`` hint; ``on_ack`` gets each new ``durable_pts``."""

    def __init__(self, on_ack: Callable[[float], None] | None = None,
                 on_live: Callable[[bool], None] | None = None) -> None:
        self.durable_pts: float | None = None
        self.done: dict | None = None
        self.closed_reason: str | None = None
        self.live = False  # someone watches the camera live (version 3: send at once)
        self._on_ack, self._on_live = on_ack, on_live
        self._rest = b""

    def feed(self, data: bytes) -> None:
        """Take received bytes; handle every whole line among them."""
        self._rest += data
        while b"\n" in self._rest:
            line, _, self._rest = self._rest.partition(b"\n")
            if line.strip():
                self._on_message(line)

    def _on_message(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            logger.warning("hub sent a line that is not JSON: %r", line[:100])
            return
        if not isinstance(message, dict):
            return
        if "done" in message:
            self.done = message
        if "closed" in message:
            self.closed_reason = str(message["closed"])[:200]
        if isinstance(message.get("live"), bool) and message["live"] != self.live:
            self.live = message["live"]
            if self._on_live is not None:
                self._on_live(self.live)
        durable = message.get("durable_pts")
        if isinstance(durable, (int, float)) and not isinstance(durable, bool):
            self.durable_pts = max(durable, self.durable_pts or durable)
            if self._on_ack is not None:
                self._on_ack(self.durable_pts)


@dataclasses.dataclass(frozen=True)
class HubResponse:
    """The hub's final answer to an ingest request (``done`` is v2's last line, if any)."""

    status: int
    reason: str
    body: str
    done: dict | None = None


class UplinkRequest:
    """What both kinds of live request share: a socket, the hub's lines, closing when done."""

    _sock: socket.socket
    acks: AckLines

    @property
    def durable_pts(self) -> float | None:
        """The newest durable PTS the hub acknowledged (None: none yet, or v1)."""
        return self.acks.durable_pts

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class HubConnection(UplinkRequest):
    """One ingest request in flight: send TS chunks, read the hub's answers meanwhile, finish.

    A v2 hub answers ``200`` with an ndjson body at once and then acknowledges durable footage
    line by line (``on_ack`` gets each ``durable_pts``); a v1 hub says nothing until the end
    unless it rejects the request.
    """

    def __init__(
        self, hub: HubAddress, camera: str, epoch: float, *,
        on_ack: Callable[[float], None] | None = None, **header_options: Any,
    ) -> None:
        self.hub = hub
        self.camera = camera
        self.opened_at = time.monotonic()
        self.protocol: int | None = None  # 2 once the hub's early ndjson answer arrived
        self.acks = AckLines(on_ack)
        self._status, self._reason = 0, ""
        self._body = bytearray()
        self._ended = False  # the hub's response is complete
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        self._sock = _connect(hub)
        try:
            headers = request_headers(hub, epoch, **header_options)
            request = h11.Request(method="POST", target=ingest_path(camera), headers=headers)
            self._send_event(request)
        except BaseException:
            self._sock.close()
            raise

    def send(self, data: bytes) -> None:
        """Send one chunk of the body; raise HubError if the hub rejected or closed meanwhile."""
        self.poll()
        if data:
            self._send_event(h11.Data(data=data))

    def poll(self) -> None:
        """Read what the hub sent so far (acks), without blocking; raise if it refused or closed."""
        while not self._ended:
            data = self._recv_now()
            if data is None:
                break
            self._take(data)
        self._raise_if_answered_early()

    def finish(self, timeout: float = RESPONSE_TIMEOUT) -> HubResponse:
        """End the body with the zero-length chunk and return the hub's (final) response."""
        self.poll()
        self._send_event(h11.EndOfMessage())
        deadline = time.monotonic() + timeout
        while not self._ended:
            self._pump(deadline)
        return HubResponse(self._status, self._reason, self._text(), self.acks.done)

    def _raise_if_answered_early(self) -> None:
        if self._status and self._status != 200:
            if not self._ended:  # read the one-line reason in full before reporting it
                deadline = time.monotonic() + RESPONSE_TIMEOUT
                while not self._ended:
                    self._pump(deadline)
            raise HubRejected(self._status, self._reason, self._text())
        if self._ended:
            if self.protocol == 2:
                why = self.acks.closed_reason or "the response ended"
                raise HubClosed(f"{self.hub.netloc} closed the stream: {why}", why)
            raise HubUnreachable(f"{self.hub.netloc} answered {self._status} before the end")

    def _pump(self, deadline: float) -> None:
        """Handle one batch of received bytes (blocking until ``deadline`` if none is there)."""
        self._take(self._recv(deadline))

    def _take(self, data: bytes) -> None:
        """Hand received bytes to h11 and handle every event they complete."""
        self._h11.receive_data(data)
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise HubUnreachable(f"{self.hub.netloc} sent a malformed response: {exc}")
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            self._handle(event)
            if self._ended:
                return

    def _handle(self, event: h11.Event) -> None:
        if isinstance(event, h11.Response):
            self._status, self._reason = event.status_code, _reason(event)
            if event.status_code == 200 and _is_ndjson(event):
                self.protocol = 2
        elif isinstance(event, h11.Data):
            if self.protocol == 2:
                self.acks.feed(event.data)
            else:
                self._body += event.data
        elif isinstance(event, h11.EndOfMessage):
            self._ended = True
        elif isinstance(event, h11.ConnectionClosed):
            self._ended = True
            if not self._status:
                raise HubUnreachable(f"{self.hub.netloc} closed the connection")

    def _text(self) -> str:
        if self.acks.done is not None:
            return json.dumps(self.acks.done)
        return first_line(bytes(self._body))

    def _send_event(self, event: h11.Event) -> None:
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:  # e.g. the hub already ended the exchange
            raise HubUnreachable(f"cannot go on with the request: {exc}") from exc
        self._sendall(data)

    def _sendall(self, data: bytes | None) -> None:
        if not data:
            return
        try:
            self._sock.sendall(data)
        except OSError as exc:
            # The hub may have answered and closed: its answer is the more useful error.
            try:
                self.poll()
            except HubUnreachable:
                pass
            raise HubUnreachable(f"sending to {self.hub.netloc} failed: {describe(exc)}") from exc

    def _recv_now(self) -> bytes | None:
        """What the hub sent, without waiting: None if nothing yet, b"" if it closed.

        Over TLS the socket is also readable when only TLS records came, such as the session
        tickets a TLS 1.3 server sends after the handshake: a blocking read would then wait
        for an answer that the hub gives only after the first bytes of the body, and the
        edge's first request failed with "no response" three seconds later.
        """
        if not _readable(self._sock):
            return None
        self._sock.settimeout(0.0)
        try:
            return self._sock.recv(RECV_SIZE)
        except (ssl.SSLWantReadError, BlockingIOError):
            return None  # TLS records without application data
        except OSError as exc:
            raise HubUnreachable(f"reading from {self.hub.netloc}: {describe(exc)}") from exc
        finally:
            self._sock.settimeout(SEND_TIMEOUT)

    def _recv(self, deadline: float) -> bytes:
        return recv_before(self._sock, self.hub, deadline)


def recv_before(sock: socket.socket, hub: HubAddress, deadline: float) -> bytes:
    """What the hub sent (b"" once it closed), waiting until ``deadline`` at most."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HubUnreachable(f"no response from {hub.netloc}")
    sock.settimeout(remaining)
    try:
        return sock.recv(RECV_SIZE)
    except socket.timeout:
        raise HubUnreachable(f"no response from {hub.netloc}") from None
    except OSError as exc:
        raise HubUnreachable(f"reading from {hub.netloc}: {describe(exc)}") from exc
    finally:
        sock.settimeout(SEND_TIMEOUT)


def _is_ndjson(response: h11.Response) -> bool:
    return any(
        name == b"content-type" and value.split(b";")[0].strip() == b"application/x-ndjson"
        for name, value in response.headers
    )


def connect(hub: HubAddress) -> socket.socket:
    """Open a connection to the hub (TLS if configured), or raise HubUnreachable/HubTlsError."""
    return _connect(hub)


def _connect(hub: HubAddress) -> socket.socket:
    try:
        sock = socket.create_connection((hub.host, hub.port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise HubUnreachable(f"cannot connect to {hub.netloc}: {describe(exc)}") from exc
    # One chunk per frame: send it now rather than wait for the next frame to fill a segment.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hub.tls is not None:  # the handshake runs within CONNECT_TIMEOUT too
        sock = wrap(sock, hub.tls, hub.host, hub.netloc)
    sock.settimeout(SEND_TIMEOUT)
    return sock


def _readable(sock: socket.socket) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True  # decrypted bytes wait in the TLS layer, not in the kernel
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def describe(exc: OSError) -> str:
    """A socket error in a few words, for messages."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    return exc.strerror or exc.__class__.__name__


def _reason(response: h11.Response) -> str:
    # h11 servers may send an empty reason phrase; the standard one reads better in logs.
    reason = response.reason.decode("latin-1").strip()
    return reason or phrase(response.status_code)


def phrase(status: int) -> str:
    """The standard reason phrase of an HTTP status ("" for one HTTP does not define)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def first_line(body: bytes) -> str:
    """The first line of a refusal's text (at most 200 characters)."""
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""
