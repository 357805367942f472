"""The ingest server: HTTP/1.1 POSTs of MPEG-TS (docs/design/protocol.md).

h11 parses each request head and writes the answers; the body is read straight from the socket
once per batch tick and decoded by recorder.ingest.body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import os
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from nvrlib.names import InvalidName, validate_camera_name

from recorder.errors import IngestRejected
from recorder.ingest import events, faces
from recorder.ingest.body import BodyError, ChunkedDecoder, LengthDecoder
from recorder.ingest.direct import DirectSocket
from recorder.ingest.guard import (
    ConnectionGuard, IngestLimits, QuietLog, VideoWatchdog, deadline, quiet_accept_errors, source_of,
)
from recorder.ingest.tls import HandshakeFailed, handshake
from recorder.ingest.protocol import (
    ACK_CONTENT_TYPE, DurableProgress, ProtocolFields, encode_ack, encode_closed, encode_done,
    parse_fields,
)

logger = logging.getLogger(__name__)

TS_PACKET = 188
SYNC_BYTE = 0x47
SYNC_CHECK_BYTES = 3 * TS_PACKET
READ_SIZE = 1024 * 1024
MAX_BATCH_BYTES = 16 * READ_SIZE  # read per tick per connection (the rest waits for the next)
BATCH_SECONDS = 0.5
# How long after its "done" the hub looks for a reset from a version-3 edge that half-closed: a
# killed edge's kernel resets at once (a round trip), a stopped one reads the line
DONE_READ_SECONDS = 1.0
DIRECT_TICK_SECONDS = 2.0  # how often a version-3 stream's counters and watchdog are looked at
DIRECT_UPGRADE = "nvr-mpegts/3"
NOT_MPEGTS = "the body is not MPEG-TS (no 0x47 sync byte every 188 bytes)"
MAX_HEAD_BYTES = 16 * 1024
SEND_TIMEOUT = 5.0  # seconds for an answer to leave, at least
MIN_SEND_RATE = 100_000  # bytes a second: a larger answer may take longer
EARLIEST_EPOCH = 946684800.0  # 2000-01-01: older stream epochs are certainly wrong


@dataclasses.dataclass(frozen=True)
class IngestRequest:
    """A validated ingest request head."""

    camera: str
    token: str | None
    location: str
    epoch: float | None
    peer: str
    protocol: ProtocolFields = ProtocolFields()  # version 2: mode, backfill id, spool


@dataclasses.dataclass(frozen=True)
class StreamEnding:
    """How an edge's stream ended, as the ingest connection saw it."""

    # clean_shutdown (the body ended) | connection_lost | stalled | closed_by_hub |
    # restarted (a v2 request whose recorder restarted: its acks froze, so the edge reconnects)
    reason: str
    detail: str = ""


class StreamSink(Protocol):
    """Where the body of an accepted request goes (a camera's segmenter)."""

    direct_ended: asyncio.Event  # version 3: the ffmpeg that read the socket is done
    stats: Any  # version 3: frames, the video frames ffmpeg found (for the watchdog)

    def attach_direct(self, direct: DirectSocket) -> None:
        """Version 3: ffmpeg reads this socket itself from now on."""

    def poll_direct(self) -> None:
        """Version 3: refresh the byte counters and read batching from the kernel's."""

    async def feed(self, data: bytes) -> None:
        """Take MPEG-TS bytes."""

    async def finish(self) -> None:
        """The body ended (or the peer went away): finish the open segment."""

    @property
    def batch_seconds(self) -> float | None:
        """Seconds between relays of this stream (None: BATCH_SECONDS; 0: every frame)."""


class IngestHandler(faces.FaceHandler, Protocol):
    """What the ingest server asks of the hub (motion events and face sightings:
    recorder.ingest.events and recorder.ingest.faces)."""

    def precheck(self, request: IngestRequest) -> None:
        """Raise IngestRejected for what can be refused before reading the body."""

    async def admit(self, request: IngestRequest) -> StreamSink:
        """Claim the camera for this connection or raise IngestRejected."""

    def release(self, camera: str, sink: StreamSink, ending: StreamEnding) -> None:
        """The connection that held ``camera`` is gone, for the reason in ``ending``."""

    def segments_of(self, sink: StreamSink) -> int:
        """Count the segments a connection produced, for the final response."""

    def bytes_of(self, sink: StreamSink) -> int:
        """Count the bytes a connection delivered, for the final response."""

    def progress_of(self, sink: StreamSink) -> DurableProgress:
        """How far a version-2 request's footage is durable, for its acks."""


def parse_request_head(request: h11.Request, peer: str) -> IngestRequest:
    """Validate method, path and headers of an ingest request, or raise IngestRejected."""
    method = request.method.decode("ascii", "replace")
    if method not in ("POST", "PUT"):
        raise IngestRejected(405, f"method {method} is not allowed; POST the stream")
    target = urlsplit(request.target.decode("ascii", "replace"))
    camera = _camera_from_path(target.path)
    headers = {name.decode("latin-1").lower(): value.decode("latin-1")
               for name, value in request.headers}
    epoch = _epoch(headers)
    return IngestRequest(camera=camera, token=_token(headers, target.query),
                         location=_location(headers), epoch=epoch, peer=peer,
                         protocol=parse_fields(headers, epoch))


def _camera_from_path(path: str) -> str:
    parts = [unquote(p) for p in path.split("/") if p]
    if len(parts) == 3 and parts[:2] == ["ingest", "v1"]:
        name = parts[2]
    elif len(parts) == 2 and parts[0] == "ingest":
        name = parts[1]
    else:
        raise IngestRejected(404, "not found; push to /ingest/v1/<camera>")
    try:
        return validate_camera_name(name)
    except InvalidName as exc:
        raise IngestRejected(400, f"bad camera name: {exc}") from None


def _token(headers: dict[str, str], query: str) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    tokens = parse_qs(query).get("token")
    return tokens[0] if tokens else None


def _location(headers: dict[str, str]) -> str:
    location = headers.get("x-nvr-location", "").strip()
    if len(location) > 128 or not location.isprintable():
        raise IngestRejected(400, "X-NVR-Location must be printable text of at most 128 characters")
    return location


def _epoch(headers: dict[str, str]) -> float | None:
    raw = headers.get("x-nvr-stream-epoch")
    if raw is None:
        return None
    try:
        epoch = float(raw)
    except ValueError:
        raise IngestRejected(400, "X-NVR-Stream-Epoch must be Unix seconds") from None
    if not math.isfinite(epoch) or not EARLIEST_EPOCH <= epoch <= time.time() + 86400:
        raise IngestRejected(400, "X-NVR-Stream-Epoch is not a plausible time")
    return epoch


def batch_delay(now: float, period: float | None = None) -> float:
    """Seconds until the next batch tick shared by every connection.

    Ticks fall on multiples of BATCH_SECONDS of the loop's clock, so all connections wake in
    the same turn of the event loop: one wake-up per tick for the hub, not one per camera.
    """
    period = BATCH_SECONDS if period is None else period
    if period <= 0:
        return 0.0
    return period - now % period


def token_matches(given: str | None, expected: str) -> bool:
    """Compare a bearer token in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def looks_like_mpegts(data: bytes) -> bool:
    """Tell whether ``data`` starts with MPEG-TS packets (a sync byte every 188 bytes)."""
    return len(data) >= SYNC_CHECK_BYTES and all(
        data[i] == SYNC_BYTE for i in range(0, SYNC_CHECK_BYTES, TS_PACKET))


class _Closed(Exception):
    """The peer closed the connection or went silent."""

    def __init__(self, reason: str, stalled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stalled = stalled


class IngestConnection:
    """One accepted TCP connection carrying one camera's stream."""

    def __init__(self, handler: IngestHandler, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, stall_timeout: float,
                 limits: IngestLimits = IngestLimits(), quiet: QuietLog | None = None) -> None:
        self.handler, self.reader, self.writer = handler, reader, writer
        self.stall_timeout = stall_timeout
        self.limits = limits
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.source = source_of(peer)
        self.log = logger
        # rejections are per connection: a flood of them is logged in short (guard.QuietLog)
        self.quiet = quiet or QuietLog(logger)
        self.watchdog = VideoWatchdog(limits.min_video_bytes, stall_timeout)
        # the body, once the head is parsed (_take_over_body)
        self._decoder: ChunkedDecoder | LengthDecoder = LengthDecoder(0)
        self._carry = b""  # bytes read before the take-over, not decoded yet
        self._eof = False  # the peer closed its side
        self._fd = -1
        # TLS: bytes must pass the SSL layer, so the relay takes what the StreamReader holds
        # instead of reading the socket (the plain path's os.read would see ciphertext)
        self._tls = writer.get_extra_info("sslcontext") is not None

    async def serve(self) -> None:
        """Read the request, stream its body into the camera's segmenter, answer."""
        try:
            await self._serve()
        except IngestRejected as exc:
            self.quiet(logging.WARNING, f"{self.source} {exc.status}",
                       "ingest from %s rejected: %d %s", self.peer, exc.status, exc.reason)
            await self._respond(exc.status, exc.reason + "\n", "text/plain")
        except h11.RemoteProtocolError as exc:
            self.quiet(logging.WARNING, f"{self.source} 400",
                       "ingest from %s rejected: not valid HTTP (%s)", self.peer, exc)
            await self._respond(400, f"bad request: {exc}\n", "text/plain")
        except _Closed as exc:
            self.quiet(logging.DEBUG, f"{self.source} closed",
                       "ingest from %s closed before a request: %s", self.peer, exc.reason)
        finally:
            self.writer.close()

    async def _serve(self) -> None:
        async with deadline(self.limits.head_timeout, "the request head"):
            request = await self._next_event(self.limits.head_timeout)
        if not isinstance(request, h11.Request):
            raise IngestRejected(400, "expected an HTTP request")
        route = events.ingest_route(request.target)
        if route is not None:  # a motion event, a face sighting or their settings: not a stream
            await self._serve_json(request, *route)
            return
        head = parse_request_head(request, self.peer)
        self.handler.precheck(head)
        if head.protocol.direct:
            await self._serve_direct(request, head)
            return
        if self.http.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        first = await self._first_bytes(request)
        sink = await self.handler.admit(head)
        acks = _AckWriter(self, self.handler.progress_of(sink)) if head.protocol.acks else None
        ending = StreamEnding("connection_lost", "the connection ended unexpectedly")
        restarted = _RestartWatch(acks, head.camera, self)
        try:
            if acks is not None:
                await acks.start()
            restarted.arm()
            ending = await self._relay(sink, head.camera, first)
        except asyncio.CancelledError:
            # the hub is shutting down, an admin disconnected this edge, or its recorder
            # restarted (a version-2 request then ends: see _RestartWatch)
            ending = restarted.ending() or StreamEnding("closed_by_hub")
        finally:
            await sink.finish()
            self.handler.release(head.camera, sink, ending)
        if acks is not None:
            await acks.finish(ending, self.handler.segments_of(sink), self.handler.bytes_of(sink))
            return
        if ending.reason == "closed_by_hub":
            self.log.info("%s: closed the connection of edge %s", head.camera, self.peer)
            await self._respond(503, "the hub closed this stream (shutdown or disconnect)\n",
                                "text/plain")
        if ending.reason == "clean_shutdown":
            body = {"camera": head.camera, "segments": self.handler.segments_of(sink),
                    "bytes": self.handler.bytes_of(sink)}
            await self._respond(200, json.dumps(body) + "\n", "application/json")

    # -- version 3: the socket goes to ffmpeg (docs/design/protocol.md, "Version 3") ----------

    async def _serve_direct(self, request: h11.Request, head: IngestRequest) -> None:
        """Switch protocols, check the first packets, then let ffmpeg read the socket."""
        self._check_upgrade(request)
        sock = self.writer.get_extra_info("socket")
        try:
            await self._send_raw(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                 b"Upgrade: " + DIRECT_UPGRADE.encode() + b"\r\n\r\n")
        except (ConnectionError, TimeoutError):
            return  # the peer went away (or reads nothing) before the stream began
        with DirectSocket.take(sock) as direct:
            await self._direct_stream(head, direct)

    def _check_upgrade(self, request: h11.Request) -> None:
        """Refuse a version-3 head that cannot switch (before the 101, as plain HTTP)."""
        headers = {name.lower(): value for name, value in request.headers}
        if self._tls:
            raise IngestRejected(400, "X-NVR-Protocol: 3 needs a plain connection (over TLS, "
                                      "use 2: ffmpeg cannot read TLS)")
        if (headers.get(b"upgrade", b"").strip().lower() != DIRECT_UPGRADE.encode()
                or b"upgrade" not in headers.get(b"connection", b"").lower()):
            raise IngestRejected(400, f"X-NVR-Protocol: 3 needs Connection: Upgrade and "
                                      f"Upgrade: {DIRECT_UPGRADE}")
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]
        if self.http.trailing_data[0] or _buffered(self.reader):
            # sent before our 101: the hub would have to copy it, and ffmpeg would miss it
            raise IngestRejected(400, "send the stream after the hub's 101 Switching Protocols")

    async def _direct_stream(self, head: IngestRequest, direct: DirectSocket) -> None:
        try:
            await self._direct_first_packets(direct)
            sink = await self.handler.admit(head)
        except IngestRejected as exc:
            # after the 101 a refusal is a closing line, with the status a version-2 head gets
            self.quiet(logging.WARNING, f"{self.source} {exc.status}",
                       "ingest from %s rejected: %d %s", self.peer, exc.status, exc.reason)
            with contextlib.suppress(OSError):
                direct.send_line(encode_closed(f"{exc.status} {exc.reason}"))
            return
        acks = _DirectAckWriter(self, self.handler.progress_of(sink), direct)
        ending = StreamEnding("connection_lost", "the connection ended unexpectedly")
        restarted = _RestartWatch(acks, head.camera, self)
        try:
            await acks.start()
            restarted.arm()
            sink.attach_direct(direct)
            ending = await self._direct_watch(sink, direct, head.camera)
        except asyncio.CancelledError:
            ending = restarted.ending() or StreamEnding("closed_by_hub")
        finally:
            await sink.finish()
            if ending.reason != "clean_shutdown":
                self.handler.release(head.camera, sink, ending)
        if ending.reason != "clean_shutdown":
            await acks.finish(ending, self.handler.segments_of(sink), self.handler.bytes_of(sink))
            return
        try:  # a FIN: a stopped edge, or a killed one (its outage is then connection_lost)
            await acks.finish(ending, self.handler.segments_of(sink), self.handler.bytes_of(sink))
            ending = await self._direct_done_read(direct, head.camera, ending)
        finally:
            self.handler.release(head.camera, sink, ending)

    async def _direct_done_read(self, direct: DirectSocket, camera: str,
                                ending: StreamEnding) -> StreamEnding:
        """Tell a stopped edge from a killed one after a version-3 half-close.

        TCP gives both a FIN. A stopped edge goes on reading until the hub's ``done``; a killed
        one's socket is closed, and its kernel answers the ``done`` with a reset.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + DONE_READ_SECONDS
        while loop.time() < end:
            if direct.peer_state() == "reset":
                self.log.warning("%s: edge %s was gone before the hub's answer (killed?)",
                                 camera, self.peer)
                return StreamEnding("connection_lost", "the edge closed its connection and "
                                                       "did not read the hub's answer")
            await asyncio.sleep(0.05)
        return ending

    async def _direct_first_packets(self, direct: DirectSocket) -> None:
        """Peek at the first packets (nothing is read): refuse a body that is not MPEG-TS."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.stall_timeout
        while True:
            data = direct.peek(SYNC_CHECK_BYTES)
            if len(data) >= SYNC_CHECK_BYTES:
                break
            state = direct.peer_state() if not data else "open"
            if state != "open" or loop.time() >= end:
                raise IngestRejected(408 if state == "open" else 400,
                                     "the stream ended or stalled before any MPEG-TS packet")
            await asyncio.sleep(0.05)  # a socket the hub does not read gives it no wake-up
        if not looks_like_mpegts(data):
            raise IngestRejected(415, NOT_MPEGTS)

    async def _direct_watch(self, sink: StreamSink, direct: DirectSocket,
                            camera: str) -> StreamEnding:
        """Look at the stream once a tick until its ffmpeg ends or the edge starves it."""
        loop = asyncio.get_running_loop()
        self.watchdog.restart()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(batch_delay(loop.time(), DIRECT_TICK_SECONDS)):
                    await sink.direct_ended.wait()
                return self._direct_ending(direct, camera)
            sink.poll_direct()
            self.watchdog.observe(direct.received(), direct.delivered(), sink.stats.frames)
            starved = self.watchdog.starved()
            if starved:
                self.log.warning("%s: edge %s %s", camera, self.peer, starved)
                return StreamEnding("stalled", f"the edge {starved}")

    def _direct_ending(self, direct: DirectSocket, camera: str) -> StreamEnding:
        """Why a direct stream's ffmpeg ended, from the socket's state."""
        state = direct.peer_state()
        if state == "open":  # ffmpeg ended on its own or by a restart: the request is over
            return StreamEnding("restarted", "the recorder restarted")
        if state == "reset":
            self.log.warning("%s: edge %s reset the connection", camera, self.peer)
            return StreamEnding("connection_lost", "the edge reset the connection")
        # A half-close is version 3's end of stream: ffmpeg read every byte before it. (An
        # edge killed with nothing unread sends the same FIN: TCP cannot tell them apart.)
        self.log.info("%s: edge %s ended its stream", camera, self.peer)
        return StreamEnding("clean_shutdown", "the edge ended its stream")

    async def _send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.writer.drain()

    async def _serve_json(self, request: h11.Request, camera: str, route: str) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in request.headers}
        token = _token(headers, urlsplit(request.target.decode("ascii", "replace")).query)
        serve = faces.serve if route in (events.FACES, events.GALLERY) else events.serve
        reply = await serve(self.handler, self, request, camera, route, token,
                            self.limits.head_timeout)
        await self._respond(reply.status, reply.text(), "application/json", reply.headers)

    async def _first_bytes(self, request: h11.Request) -> bytes:
        # Validate the body before anything is spawned for it: garbage never reaches disk.
        self._take_over_body(request)
        buffered = b""
        async with deadline(self.stall_timeout, "the first MPEG-TS packets"):
            while len(buffered) < SYNC_CHECK_BYTES:
                try:
                    raw = self._read_now() or await self._wait_for_bytes(self.stall_timeout)
                except _Closed as exc:  # a half-closed peer still reads the answer
                    raise IngestRejected(408 if exc.stalled else 400, "the body ended before any "
                                         f"MPEG-TS packet: the edge {exc.reason}") from None
                try:
                    buffered += self._decoder.feed(raw)
                except BodyError as exc:
                    raise IngestRejected(400, f"bad request body: {exc}") from None
                if len(buffered) < SYNC_CHECK_BYTES and (self._decoder.ended or self._eof):
                    raise IngestRejected(400, "the body ended before any MPEG-TS packet")
        if not looks_like_mpegts(buffered):
            raise IngestRejected(415, NOT_MPEGTS)
        return buffered

    async def _relay(self, sink: StreamSink, camera: str, first: bytes) -> StreamEnding:
        self.watchdog.restart()  # its first window starts with the stream, not the connection
        self.watchdog.feed(first)
        await sink.feed(first)
        while True:
            try:
                batch, ended = await self._next_batch(sink.batch_seconds)
            except _Closed as exc:
                reason = (exc.stalled and self.watchdog.starved()) or exc.reason
                self.log.warning("%s: edge %s %s", camera, self.peer, reason)
                return StreamEnding("stalled" if exc.stalled else "connection_lost",
                                    f"the edge {reason}")
            except BodyError as exc:
                self.log.warning("%s: edge %s sent a broken stream: %s", camera, self.peer, exc)
                return StreamEnding("connection_lost", f"the edge sent a broken stream: {exc}")
            if batch:
                self.watchdog.feed(batch)
                await sink.feed(batch)
            if ended:
                self.log.info("%s: edge %s ended its stream", camera, self.peer)
                return StreamEnding("clean_shutdown", "the edge ended its stream")
            starved = self.watchdog.starved()  # padding or a trickle does not hold a camera
            if starved:
                self.log.warning("%s: edge %s %s", camera, self.peer, starved)
                return StreamEnding("stalled", f"the edge {starved}")

    async def _next_batch(self, period: float | None = None) -> tuple[bytes, bool]:
        """Wait for the next batch tick, then take every byte that arrived; tell if the body ended.

        An encoder sends one small chunk per frame. Letting the kernel buffer them until the
        next tick (BATCH_SECONDS, shared by every connection: batch_delay) and relaying them
        at once wakes the hub and its ffmpeg a few times a second instead of fifty: this is
        most of the hub's CPU (scripts/bench/hub_cpu.py). The socket is read directly, without
        a wake-up of its own; TCP back-pressure covers a full buffer; the latency is far below
        a segment. A stream that sent nothing by the tick is waited for as before. A stream
        someone watches live (``period`` 0) is relayed as it comes: its frames must not wait.
        """
        if self._decoder.ended:  # the first bytes held the whole body
            return b"", True
        if self._eof:
            raise _Closed("disconnected mid-stream")
        await asyncio.sleep(batch_delay(asyncio.get_running_loop().time(), period))
        raw = self._read_now()
        if not raw and not self._eof:
            raw = await self._wait_for_bytes(self.watchdog.read_timeout(self.stall_timeout))
        payload = self._decoder.feed(raw)
        return payload, self._decoder.ended

    def _take_over_body(self, request: h11.Request) -> None:
        """Read the body from the socket from now on; h11 only parsed the head."""
        headers = {name.lower(): value for name, value in request.headers}
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self._decoder = ChunkedDecoder()  # h11 refused any other transfer coding
        else:
            self._decoder = LengthDecoder(int(headers.get(b"content-length", b"0")))
        if not self._tls:  # TLS: the transport keeps reading; the reader's limit pauses it
            self.writer.transport.pause_reading()  # type: ignore[attr-defined]
        unparsed, closed = self.http.trailing_data
        self._carry = unparsed + self._take_buffered()
        self._eof = closed or self.reader.at_eof()
        sock = self.writer.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None and not self._tls else -1

    def _read_now(self) -> bytes:
        """Return every byte that has arrived (without waiting); notice the peer closing."""
        parts, self._carry = [self._carry, self._take_buffered()], b""
        if self._tls:
            return self._tls_now(parts)
        total = 0
        while not self._eof and self._fd >= 0 and total < MAX_BATCH_BYTES:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                break
            except ConnectionError:
                raise _Closed("reset the connection") from None
            if not data:
                self._eof = True
                break
            parts.append(data)
            total += len(data)
        return b"".join(parts)

    def _take_buffered(self) -> bytes:
        data = _buffered(self.reader)
        if self._tls:  # the reader paused the transport if its buffer filled: reading goes on
            self.reader._maybe_resume_transport()  # type: ignore[attr-defined]
        return data

    def _tls_now(self, parts: list[bytes]) -> bytes:
        """What the TLS layer decrypted so far; notice the peer closing or resetting."""
        data = b"".join(parts)
        if not data and self.reader.exception() is not None:
            raise _Closed("reset the connection")
        self._eof = self._eof or self.reader.at_eof()
        return data

    async def _wait_for_bytes(self, timeout: float) -> bytes:
        """Wait (at most ``timeout``) for bytes from a silent peer, through the transport."""
        if self._tls:
            data = await self._read(timeout)
            self._eof = self._eof or not data
            return data + self._take_buffered()
        transport = self.writer.transport
        transport.resume_reading()  # type: ignore[attr-defined]
        try:
            data = await self._read(timeout)
        finally:
            if not transport.is_closing():
                transport.pause_reading()  # type: ignore[attr-defined]
        if not data:
            self._eof = True
        return data + _buffered(self.reader)

    async def _next_event(self, timeout: float) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.http.next_event()
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.ConnectionClosed):
                    raise _Closed("disconnected")
                return event
            data = await self._read(timeout)
            if not data and self.http.their_state is h11.SEND_BODY:
                raise _Closed("disconnected mid-stream")
            self.http.receive_data(data)

    async def _read(self, timeout: float) -> bytes:
        """One read through the transport, within ``timeout`` (b"" when the peer closed)."""
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise _Closed(f"sent nothing for {timeout:g} s (stalled)", stalled=True) from None
        except ConnectionError:
            raise _Closed("reset the connection") from None

    async def _respond(self, status: int, body: str | None, content_type: str,
                       extra: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer and end the exchange; ``body`` None: no body at all (a 304)."""
        headers = [*extra, ("Connection", "close")]
        if body is not None:
            payload = body.encode()
            headers += [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        try:
            await self._send(h11.Response(status_code=status, headers=headers))
            if body is not None:
                await self._send(h11.Data(data=payload))
            await self._send(h11.EndOfMessage())
        except (h11.LocalProtocolError, ConnectionError, TimeoutError):
            pass  # the peer is gone, stopped reading, or the connection is in no state to answer

    async def _send(self, event: h11.Event) -> None:
        data = self.http.send(event)
        if data:
            self.writer.write(data)
            # a face gallery is up to ~5.5 MB: a slow edge link gets the time it needs
            async with asyncio.timeout(max(SEND_TIMEOUT, len(data) / MIN_SEND_RATE)):
                await self.writer.drain()


def _buffered(reader: asyncio.StreamReader) -> bytes:
    """Take what a paused StreamReader holds, without waiting.

    StreamReader has no public non-blocking read; its buffer is a bytearray in every CPython
    since 3.4. Reading it is how the relay leaves the transport's per-read wake-ups behind.
    """
    buffer: bytearray = reader._buffer  # type: ignore[attr-defined]
    if not buffer:
        return b""
    data = bytes(buffer)
    buffer.clear()
    return data


class _RestartWatch:
    """Ends a version-2 request as soon as its acks freeze (the hub restarted its recorder).

    Acks can never advance past the bytes a restart lost, so the request is over: the relay is
    cancelled at once, even while it waits for data, and the edge opens a new request and
    back-fills the gap from its spool. A version-1 request just goes on into the new ffmpeg.
    """

    def __init__(self, acks: _AckWriter | None, camera: str, connection: IngestConnection) -> None:
        self.acks, self.camera, self.connection = acks, camera, connection
        self.reason: str | None = None
        self.task = asyncio.current_task()

    def arm(self) -> None:
        """Start watching (a freeze that already happened ends the request at once)."""
        if self.acks is None:
            return
        progress = self.acks.progress
        progress.on_freeze.append(self._frozen)
        if progress.frozen is not None and progress.ends_request:
            self._frozen(progress.frozen)

    def _frozen(self, reason: str) -> None:
        if self.reason is None and self.task is not None:
            self.reason = reason
            self.connection.log.info("%s: ending the request of edge %s: %s", self.camera,
                                     self.connection.peer, reason)
            self.task.cancel()

    def ending(self) -> StreamEnding | None:
        """The ending if the watch cancelled the relay (and takes that cancellation back)."""
        if self.reason is None or self.task is None:
            return None
        self.task.uncancel()
        return StreamEnding("restarted", self.reason)


class _AckWriter:
    """The early 200 of a version-2 request and its ndjson acks (protocol.md, Version 2)."""

    def __init__(self, connection: IngestConnection, progress: DurableProgress) -> None:
        self.connection, self.progress = connection, progress
        self.task: asyncio.Task[None] | None = None
        self.sent: float | None = None
        self.broken = False

    async def start(self) -> None:
        """Answer 200 at once, while the body still streams, and start sending acks."""
        headers = [("Content-Type", ACK_CONTENT_TYPE), ("Transfer-Encoding", "chunked")]
        await self._send(h11.Response(status_code=200, headers=headers))
        self.task = asyncio.create_task(self._acks())

    async def _acks(self) -> None:
        while not self.broken:
            await self.progress.changed()
            await self._send_ack()

    async def _send_ack(self) -> None:
        pts = self.progress.durable_pts
        if pts is not None and pts != self.sent:
            self.sent = pts
            await self._send(h11.Data(data=encode_ack(pts)))

    async def finish(self, ending: StreamEnding, segments: int, size: int) -> None:
        """Send the last line (done or closed) and end the response."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        pts = self.progress.durable_pts
        if ending.reason == "clean_shutdown" and self.progress.frozen is None:
            last = encode_done(segments, size, pts)
        else:
            last = encode_closed(self.progress.frozen or ending.reason)
        if ending.reason != "clean_shutdown":
            await self._send_ack()  # the final segment's, if not sent yet
        await self._send(h11.Data(data=last))
        await self._send(h11.EndOfMessage())

    async def _send(self, event: h11.Event) -> None:
        if self.broken:
            return
        try:
            await self.connection._send(event)
        except (h11.LocalProtocolError, ConnectionError, TimeoutError) as exc:
            # the edge went away or stopped reading: it keeps its spool, nothing is lost
            self.broken = True
            self.connection.log.info("acks to %s stopped: %s", self.connection.peer,
                                     exc or type(exc).__name__)


class _DirectAckWriter(_AckWriter):
    """A version-3 request's acks: bare ndjson lines after the 101, sent without waiting."""

    def __init__(self, connection: IngestConnection, progress: DurableProgress,
                 direct: DirectSocket) -> None:
        super().__init__(connection, progress)
        self.direct = direct

    async def start(self) -> None:
        """Start sending acks (the 101 was the answer)."""
        self.task = asyncio.create_task(self._acks())

    async def _send(self, event: h11.Event) -> None:
        if self.broken or not isinstance(event, h11.Data):
            return
        try:
            # never waits: with the peer's window full, the newest ack replaces an unsent one
            self.direct.send_line(bytes(event.data))
        except OSError as exc:
            self.broken = True
            self.connection.log.info("acks to %s stopped: %s", self.connection.peer, exc)


async def start_server(handler: IngestHandler, host: str, port: int, stall_timeout: float,
                       on_connection: Callable[[asyncio.Task[None]], None],
                       limits: IngestLimits = IngestLimits(),
                       tls: ssl.SSLContext | None = None) -> asyncio.Server:
    """Listen for ingest connections (TLS ones with ``tls``); each is served by its own task."""
    guard = ConnectionGuard(limits)
    quiet = QuietLog(logger)
    quiet_accept_errors(asyncio.get_running_loop())

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = source_of(writer.get_extra_info("peername"))
        sock = writer.get_extra_info("socket")
        refusal = guard.open(source, sock.fileno() if sock is not None else 0)
        if refusal is not None:  # closed at once: a flood never holds descriptors
            writer.write(refusal.response())
            writer.close()
            return
        try:
            if tls is not None and not await _tls_handshake(reader, writer, source):
                return
            await _serve_admitted(reader, writer)
        finally:
            guard.close(source)

    async def _tls_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             source: str) -> bool:
        assert tls is not None
        try:
            await handshake(reader, writer, tls, limits.head_timeout)
        except asyncio.CancelledError:  # the hub is stopping: end quietly (see below)
            writer.transport.abort()
            return False
        except HandshakeFailed as exc:
            peer = writer.get_extra_info("peername") or ("?", 0)
            quiet(logging.WARNING, f"{source} tls", "ingest from %s:%s refused: it %s",
                  peer[0], peer[1], exc)
            writer.transport.abort()  # nothing to say to a client that speaks no TLS
            return False
        return True

    async def _serve_admitted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = IngestConnection(handler, reader, writer, stall_timeout, limits, quiet)
        task = asyncio.current_task()
        assert task is not None
        on_connection(task)
        try:
            await connection.serve()
        except asyncio.CancelledError:
            # Cancelled before the relay began (during shutdown). Ending quietly keeps
            # Python 3.11's start_server from logging the cancellation as an error.
            pass

    return await asyncio.start_server(serve, host, port, limit=READ_SIZE, reuse_address=True)

