"""The ingest protocol's client side: one chunked HTTP/1.1 POST of MPEG-TS per connection."""

from __future__ import annotations

import dataclasses
import http
import logging
import select
import socket
import time

import h11

from .errors import HubRejected, HubUnreachable

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
# A send that cannot move a frame's chunk in this long means the hub or the link is stuck.
SEND_TIMEOUT = 10.0
RESPONSE_TIMEOUT = 3.0
RECV_SIZE = 65536
USER_AGENT = "nvr-edge/1"


@dataclasses.dataclass(frozen=True)
class HubAddress:
    """Where the hub listens, and the credentials and location the edge presents."""

    host: str
    port: int
    token: str | None = dataclasses.field(default=None, repr=False)
    location: str | None = None

    @property
    def netloc(self) -> str:
        """Return host:port for the Host header and for logs ([v6]:port for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def ingest_path(camera: str) -> str:
    """Return the request target for a camera (the name is validated by the CLI)."""
    return f"/ingest/v1/{camera}"


def request_headers(hub: HubAddress, epoch: float) -> list[tuple[str, str]]:
    """Return the ingest request's headers: auth, TS content type, chunked, location, epoch."""
    headers = [("Host", hub.netloc), ("User-Agent", USER_AGENT)]
    if hub.token:
        headers.append(("Authorization", f"Bearer {hub.token}"))
    headers += [("Content-Type", "video/mp2t"), ("Transfer-Encoding", "chunked")]
    if hub.location:
        headers.append(("X-NVR-Location", hub.location))
    headers.append(("X-NVR-Stream-Epoch", f"{epoch:.3f}"))
    return headers


@dataclasses.dataclass(frozen=True)
class HubResponse:
    """The hub's final answer to an ingest request."""

    status: int
    reason: str
    body: str


class HubConnection:
    """One ingest request in flight: send TS chunks, watch for an early rejection, finish."""

    def __init__(self, hub: HubAddress, camera: str, epoch: float) -> None:
        self.hub = hub
        self.camera = camera
        self.opened_at = time.monotonic()
        self._h11 = h11.Connection(our_role=h11.CLIENT)
        self._sock = _connect(hub)
        try:
            request = h11.Request(
                method="POST", target=ingest_path(camera), headers=request_headers(hub, epoch)
            )
            self._send_event(request)
        except BaseException:
            self._sock.close()
            raise

    def send(self, data: bytes) -> None:
        """Send one chunk of the body; raise HubRejected if the hub has answered meanwhile."""
        self._check_early_response()
        if data:
            self._send_event(h11.Data(data=data))

    def finish(self, timeout: float = RESPONSE_TIMEOUT) -> HubResponse:
        """End the body with the zero-length chunk and return the hub's response."""
        self._check_early_response()
        self._send_event(h11.EndOfMessage())
        return self._read_response(time.monotonic() + timeout)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def __enter__(self) -> HubConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
            self._check_early_response()
            raise HubUnreachable(f"sending to {self.hub.netloc} failed: {_describe(exc)}") from exc

    def _check_early_response(self) -> None:
        # The hub sends nothing while a stream is healthy, so anything readable is a
        # rejection (or a close): poll without blocking, then read it out in full.
        if not _readable(self._sock):
            return
        response = self._read_response(time.monotonic() + RESPONSE_TIMEOUT)
        raise HubRejected(response.status, response.reason, response.body)

    def _read_response(self, deadline: float) -> HubResponse:
        status, reason, body = 0, "", bytearray()
        while True:
            event = self._next_event(deadline)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status, reason = event.status_code, _reason(event)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if not status:
                    raise HubUnreachable(f"{self.hub.netloc} closed the connection")
                return HubResponse(status, reason, _first_line(bytes(body)))

    def _next_event(self, deadline: float) -> h11.Event | type[h11.NEED_DATA]:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise HubUnreachable(f"{self.hub.netloc} sent a malformed response: {exc}")
            if event is not h11.NEED_DATA:
                return event
            self._h11.receive_data(self._recv(deadline))

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HubUnreachable(f"no response from {self.hub.netloc}")
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(RECV_SIZE)
        except socket.timeout:
            raise HubUnreachable(f"no response from {self.hub.netloc}") from None
        except OSError as exc:
            raise HubUnreachable(f"reading from {self.hub.netloc}: {_describe(exc)}") from exc
        finally:
            self._sock.settimeout(SEND_TIMEOUT)


def _connect(hub: HubAddress) -> socket.socket:
    try:
        sock = socket.create_connection((hub.host, hub.port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise HubUnreachable(f"cannot connect to {hub.netloc}: {_describe(exc)}") from exc
    sock.settimeout(SEND_TIMEOUT)
    # One chunk per frame: send it now rather than wait for the next frame to fill a segment.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _describe(exc: OSError) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return exc.strerror or exc.__class__.__name__


def _reason(response: h11.Response) -> str:
    # h11 servers may send an empty reason phrase; the standard one reads better in logs.
    reason = response.reason.decode("latin-1").strip()
    if reason:
        return reason
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""
