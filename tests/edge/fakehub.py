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


class IngestServer:
    """A tiny ingest hub: checks the bearer token, stores each body, answers 200 at its end.

    ``reject`` makes it answer that status (with a one-line reason) right after the head,
    as the real hub does for a bad token; ``reject_first`` limits that to the first N requests.
    """

    def __init__(self, folder: Path, port: int = 0, reject: int | None = None,
                 reject_first: int | None = None) -> None:
        self.folder = folder
        self.reject = reject
        self.reject_first = reject_first
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
            while not self._stop.is_set():
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(sock.recv(65536))
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                elif isinstance(event, h11.Request):
                    received = self._record(event)
                    status = self._status_for(received)
                    if status != 200:
                        self._answer(sock, conn, received, status, b"bad bearer token\n")
                        return
                elif isinstance(event, h11.Data):
                    with received.body_path.open("ab") as body:
                        body.write(event.data)
                    received.bytes += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    received.complete = True
                    body = json.dumps({"camera": received.target.rsplit("/", 1)[-1],
                                       "segments": 1, "bytes": received.bytes}).encode()
                    self._answer(sock, conn, received, 200, body)
                    return
                else:  # ConnectionClosed: the peer went away mid-stream
                    return

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
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            # Drain what the client still sends so closing does not reset the connection
            # before it read the answer (a lingering close, as HTTP servers do).
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and sock.recv(65536):
                pass
        except OSError:
            pass

    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.requests)


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
