"""Test helpers: a real h11 ingest server on 127.0.0.1, a deadline wait, and a TS decoder."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import h11
import pytest

TOKEN = "s3cret-token"
VIDEO_FPS = 15
VIDEO_FRAMES = 30  # 2 s
# a hub of before motion events and faces: these are not recorded, answered 404
MOTION_ROUTES = (b"events", b"motion-settings", b"faces", b"faces-gallery")


def wait_until(predicate: Callable[[], object], timeout: float, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclasses.dataclass
class Received:
    """One request the test server saw."""

    method: str
    target: str
    headers: dict[str, str]
    body_path: Path
    bytes: int = 0
    complete: bool = False  # the final zero-length chunk arrived
    status: int | None = None
    acks: list[float] = dataclasses.field(default_factory=list)  # durable_pts sent (v2)
    pts: list[int] = dataclasses.field(default_factory=list)  # video PES PTS seen
    ended: str | None = None  # "done" or "closed" (v2)
    opened: float = dataclasses.field(default_factory=time.monotonic)
    _ts_rest: bytes = b""

    def started_before(self, other: Received) -> bool:
        return self.opened < other.opened

    @property
    def v2(self) -> bool:
        return self.headers.get("x-nvr-protocol") == "2"

    @property
    def mode(self) -> str:
        return self.headers.get("x-nvr-mode", "live")

    def take_ts(self, data: bytes) -> None:
        """Collect the PTS of video PES packets in ``data`` (whole 188-byte packets)."""
        data = self._ts_rest + data
        whole = len(data) // 188 * 188
        self._ts_rest = data[whole:]
        for i in range(0, whole, 188):
            pts = pes_pts(data[i : i + 188])
            if pts is not None:
                self.pts.append(pts)


class IngestServer:
    """A tiny ingest hub: checks the bearer token, stores each body, answers 200 at its end.

    ``reject`` makes it answer that status (with a one-line reason) right after the head,
    as the real hub does for a bad token; ``reject_first`` limits that to the first N requests.
    """

    def __init__(self, folder: Path, port: int = 0, reject: int | None = None,
                 reject_first: int | None = None, v2: bool = False, ack_seconds: float = 1.0,
                 close_after: float | None = None, silent: bool = False,
                 ack_limit: int | None = None, refuse_v3: bool = False) -> None:
        self.folder = folder
        self.refuse_v3 = refuse_v3  # answer a version-3 head 400, as a hub that cannot does
        self.reject = reject
        self.reject_first = reject_first
        # v2: answer 200 ndjson at once and ack every ``ack_seconds`` of PTS; ``close_after``
        # (s) ends a live stream with {"closed"}; ``silent`` never answers at all.
        self.v2 = v2
        self.ack_seconds = ack_seconds
        self.close_after = close_after
        self.silent = silent
        self.ack_limit = ack_limit  # stop acking a request after this many acks
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]

    def start(self) -> IngestServer:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.05)
        conn = h11.Connection(h11.SERVER)
        with sock:
            received = None
            opened = time.monotonic()
            while not self._stop.is_set():
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:  # the edge was killed mid-chunk
                    return
                if event is h11.NEED_DATA:
                    if received and received.ended is None and self._should_close(received, opened):
                        self._v2_end(sock, conn, received, {"closed": "test hub closes"})
                        return
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    if event.target.rsplit(b"/", 1)[-1] in MOTION_ROUTES:
                        self._no_motion(sock, conn)  # like a hub of before motion events
                        return
                    received = self._record(event)
                    status = self._status_for(received)
                    if status != 200:
                        self._answer(sock, conn, received, status, self._reason(status))
                        return
                    if received.v2 and self.v2 and not self.silent:
                        self._v2_start(sock, conn, received)
                elif isinstance(event, h11.Data):
                    self._take(sock, conn, received, event.data)
                elif isinstance(event, h11.EndOfMessage):
                    received.complete = True
                    if self.silent:
                        return
                    if received.status == 200:  # v2: the ndjson answer is running
                        self._v2_end(sock, conn, received, {
                            "done": True, "segments": 1, "bytes": received.bytes,
                            "durable_pts": None})
                        return
                    body = json.dumps({"camera": received.target.rsplit("/", 1)[-1],
                                       "segments": 1, "bytes": received.bytes}).encode()
                    self._answer(sock, conn, received, 200, body)
                    return
                else:  # ConnectionClosed: the peer went away mid-stream
                    return

    def _no_motion(self, sock: socket.socket, conn: h11.Connection) -> None:
        headers = [("Content-Length", "10"), ("Connection", "close")]
        data = conn.send(h11.Response(status_code=404, headers=headers, reason=b"Not Found"))
        self._sendall(sock, data + conn.send(h11.Data(data=b"not found\n")))

    def _reason(self, status: int) -> bytes:
        return {401: b"bad bearer token\n", 501: b"backfill is not implemented\n"}.get(
            status, b"no\n")

    def _should_close(self, received: Received, opened: float) -> bool:
        return (self.close_after is not None and received.status == 200
                and received.mode == "live" and time.monotonic() - opened >= self.close_after)

    def _take(self, sock: socket.socket, conn: h11.Connection, received: Received,
              data: bytes) -> None:
        with received.body_path.open("ab") as body:
            body.write(data)
        received.bytes += len(data)
        received.take_ts(data)
        if received.status != 200 or len(received.pts) < 2:
            return
        if self.ack_limit is not None and len(received.acks) >= self.ack_limit:
            return
        # A "segment" is durable once ack_seconds of PTS came after the last ack.
        first = received.pts[0] if not received.acks else round(received.acks[-1] * 90_000)
        newest = received.pts[-1]
        if newest - first >= self.ack_seconds * 90_000:
            received.acks.append(newest / 90_000)
            self._send_line(sock, conn, {"durable_pts": newest / 90_000})

    def _v2_start(self, sock: socket.socket, conn: h11.Connection, received: Received) -> None:
        headers = [("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")]
        received.status = 200
        self._sendall(sock, conn.send(h11.Response(status_code=200, headers=headers,
                                                   reason=b"OK")))

    def _send_line(self, sock: socket.socket, conn: h11.Connection, message: dict) -> None:
        self._sendall(sock, conn.send(h11.Data(data=json.dumps(message).encode() + b"\n")))

    def _v2_end(self, sock: socket.socket, conn: h11.Connection, received: Received,
                message: dict) -> None:
        received.ended = "done" if "done" in message else "closed"
        self._send_line(sock, conn, message)
        self._sendall(sock, conn.send(h11.EndOfMessage()))
        self._linger(sock)

    @staticmethod
    def _sendall(sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass

    def _linger(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
            # Drain what the client still sends so closing does not reset the connection
            # before it read the answer (a lingering close, as HTTP servers do).
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and sock.recv(65536):
                pass
        except OSError:
            pass

    def _record(self, event: h11.Request) -> Received:
        headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        with self._lock:
            path = self.folder / f"body-{len(self.requests)}.ts"
            received = Received(event.method.decode(), event.target.decode(), headers, path)
            path.write_bytes(b"")
            self.requests.append(received)
        return received

    def _status_for(self, received: Received) -> int:
        if received.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401
        if received.mode == "backfill" and not (self.v2 and received.v2):
            return 501
        if self.refuse_v3 and received.headers.get("x-nvr-protocol") == "3":
            return 400
        if self.reject and (self.reject_first is None or len(self.requests) <= self.reject_first):
            return self.reject
        return 200

    def _answer(self, sock: socket.socket, conn: h11.Connection, received: Received,
                status: int, body: bytes) -> None:
        headers = [("Content-Type", "text/plain" if status != 200 else "application/json"),
                   ("Content-Length", str(len(body))), ("Connection", "close")]
        reason = {200: b"OK", 401: b"Unauthorized", 503: b"Service Unavailable"}.get(status, b"")
        data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        received.status = status
        self._sendall(sock, data)
        self._linger(sock)

    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.requests)


def pes_pts(packet: bytes) -> int | None:
    """Return the PTS of a video PES that starts in this TS packet, else None."""
    if packet[0] != 0x47 or not packet[1] & 0x40:  # no payload unit start
        return None
    offset = 4
    if packet[3] & 0x20:  # adaptation field
        offset += 1 + packet[4]
    pes = packet[offset:]
    if len(pes) < 14 or pes[:3] != b"\x00\x00\x01" or not 0xE0 <= pes[3] <= 0xEF:
        return None
    if not pes[7] & 0x80:
        return None
    p = pes[9:14]
    return (((p[0] >> 1) & 0x07) << 30) | (p[1] << 22) | ((p[2] >> 1) << 15) | (p[3] << 7) | (
        p[4] >> 1)


def decode_ts(path: Path) -> tuple[str, str, list[int], list[int]]:
    """Return the container format, codec, PTS of decodable frames and keyframe PTS of a TS."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts, keys = [], []
        for packet in container.demux(stream):
            for frame in packet.decode():
                pts.append(frame.pts)
                if frame.key_frame:
                    keys.append(frame.pts)
        return container.format.name, stream.codec_context.name, pts, keys
