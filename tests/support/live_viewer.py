"""A viewer of the web app's live fMP4 stream that reads each frame's clock (tests and benchmark).

It reads ``GET /live/<camera>/live.mp4`` on a thread, splits the body into boxes, decodes each
frame with PyAV (the stream's own H.264, no browser) and reads the time the clock pusher wrote
into it (tests/support/clock_frames.py): its delay is the arrival time minus that. It can stop
reading for a while, as a stalled browser does, to show that the server skips it ahead.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import threading
import time
import urllib.parse

import av

from nvrlib import fmp4
from tests.support.clock_frames import delay_ms, read_clock


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame as the viewer got it: when (time.time()) and how late (ms)."""

    arrived: float
    delay_ms: int


class LiveViewer:
    """Reads one camera's live stream on a thread; ``pause()`` stops reading until ``resume()``."""

    def __init__(self, url: str, cookie: str, decode: bool = True,
                 receive_buffer: int | None = None) -> None:
        """Watch ``url`` with the session ``cookie`` (a Cookie header's value).

        ``receive_buffer`` caps the socket's receive buffer: on loopback Linux lets it grow to
        megabytes, which would hold a whole stall and hide the server's own skipping.
        """
        self.url, self.cookie, self.decode = urllib.parse.urlsplit(url), cookie, decode
        self.receive_buffer = receive_buffer
        self.frames: list[Frame] = []
        self.bytes = 0
        self.error: str | None = None
        self._reading = threading.Event()
        self._reading.set()
        self._stop = threading.Event()
        self._decoder: av.codec.context.CodecContext | None = None
        self._thread = threading.Thread(target=self._run, name="live-viewer", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop reading the socket (the server's buffers fill, as for a stalled browser)."""
        self._reading.clear()

    def resume(self) -> None:
        """Read again."""
        self._reading.set()

    def stop(self) -> None:
        """End the stream and the thread."""
        self._stop.set()
        self._reading.set()
        self._thread.join(10)

    def delays_since(self, since: float) -> list[int]:
        """Delays (ms) of the frames that arrived at or after ``since`` (time.time())."""
        return [f.delay_ms for f in list(self.frames) if f.arrived >= since]

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)
        try:
            conn.connect()
            if self.receive_buffer:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            conn.request("GET", self.url.path, headers={"Cookie": self.cookie})
            with conn.getresponse() as response:
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {response.read(500)!r}")
                self._read(response)
        except Exception as exc:  # reported by the test, which stops the viewer
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def _read(self, response: http.client.HTTPResponse) -> None:
        pending = b""
        while chunk := response.read1(64 * 1024):
            self._reading.wait()
            if self._stop.is_set():
                return
            self.bytes += len(chunk)
            boxes, pending = fmp4.split_boxes(pending + chunk)
            for box in boxes:
                self._box(box)

    def _box(self, box: bytes) -> None:
        kind = fmp4.box_type(box)
        if kind == b"moov" and self.decode:
            self._decoder = av.CodecContext.create("h264", "r")
            self._decoder.extradata = _avcc(box)
            self._decoder.thread_count = 1  # frame threads would hold frames back
        elif kind == b"mdat":
            arrived = time.time()
            if self._decoder is None:
                self.frames.append(Frame(arrived, -1))
                return
            for frame in self._decoder.decode(av.Packet(box[8:])):
                shown = read_clock(frame.to_ndarray(format="gray"))
                self.frames.append(Frame(arrived, delay_ms(shown, int(arrived * 1000))))


def _avcc(moov: bytes) -> bytes:
    """The payload of the avcC box inside an init segment's moov (H.264 decoder setup)."""
    at = moov.find(b"avcC")
    size = int.from_bytes(moov[at - 4:at], "big")
    return moov[at + 4:at - 4 + size]
