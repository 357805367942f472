#!/usr/bin/env python3
"""A light load generator: one process pushing N camera streams to the hub, for hub_cpu.py.

256 stock `ffmpeg -re` pushers do not fit beside a 256-stream hub on two cores; this pusher
costs a few percent of one. Each stream is one HTTP/1.1 chunked POST of the same MPEG-TS file
to `/ingest/v1/<prefix><k>`, paced in real time by the file's own video PTS and sent every
40 ms (one chunk per tick, as an encoder sends one per frame). The file is pushed once, not
looped (a loop would jump the PTS back): give it an input longer than the run.

On SIGTERM or SIGINT each stream finishes the frame it is in (it sends up to the next video
PES start), ends its body with the last chunk, reads the hub's answer and writes a -progress
style file `DIR/<prefix><k>.txt` (total_size = body bytes sent, out_time_us = media sent,
progress=end), which is what hub_cpu.py checks against what the hub received and cataloged.
While running it rewrites those files every second (progress=continue), for the realtime%
column.

With --protocol 3 each stream is instead a version-3 request (docs/design/protocol.md): the
head asks to switch protocols, the raw MPEG-TS follows the hub's 101 (no chunk framing), the
hub's ack lines are read until it closes, and the end is a half-close (the hub's ffmpeg reads
the socket itself).

Usage: mux_pusher.py --port P --streams N --input in.ts --progress-dir DIR [--prefix bench]
                     [--protocol 1|3] [--token-file FILE]
"""

from __future__ import annotations

import argparse
import bisect
import selectors
import signal
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from recorder.supervise import pts  # noqa: E402  (after the path set-up)

TS_PACKET = 188
TICK = 0.040
# A version-3 sender batches: the hub's ffmpeg reads its socket itself and wakes once per batch
# (docs/design/protocol.md, "Version 3"), where a frame at a time would wake it four times as often.
DIRECT_BATCH = 0.5
PROGRESS_EVERY = 1.0


class Timeline:
    """Where each video PES of the file starts, and its PTS in seconds from the first."""

    def __init__(self, data: bytes) -> None:
        self.offsets: list[int] = []
        self.seconds: list[float] = []
        first: int | None = None
        for offset in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
            found = pts.pes_pts(data[offset:offset + TS_PACKET])
            if found is None or not 0xE0 <= found[0] <= 0xEF:
                continue
            first = found[1] if first is None else first
            self.offsets.append(offset)
            self.seconds.append(pts.seconds((found[1] - first) % pts.PTS_WRAP))
        if not self.offsets:
            raise SystemExit("the input has no video PES with a PTS")
        self.size = len(data)
        self.first_pts = pts.seconds(first or 0)

    def offset_at(self, media_seconds: float) -> int:
        """The byte offset up to which the frames due by ``media_seconds`` lie."""
        index = bisect.bisect_right(self.seconds, media_seconds)
        return self.size if index >= len(self.offsets) else self.offsets[index]

    def boundary_after(self, offset: int) -> tuple[int, float]:
        """The first frame boundary at or after ``offset``, and the media time sent up to it."""
        index = bisect.bisect_left(self.offsets, offset)
        if index >= len(self.offsets):
            last = self.seconds[-1] + TICK
            return self.size, last
        return self.offsets[index], self.seconds[index]


class Stream:
    """One camera's connection and how far it got."""

    def __init__(self, name: str, port: int, protocol: int = 1, epoch: float = 0.0,
                 token: str | None = None) -> None:
        self.name = name
        self.raw = protocol == 3
        self.sock = socket.create_connection(("127.0.0.1", port))
        head = f"POST /ingest/v1/{name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if self.raw:  # switch protocols first: the body may only follow the hub's 101
            self.sock.sendall((head + f"X-NVR-Protocol: 3\r\nX-NVR-Stream-Epoch: {epoch:.6f}\r\n"
                               "Connection: Upgrade\r\nUpgrade: nvr-mpegts/3\r\n\r\n").encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"{name}: the hub did not switch: {answer[:200]!r}")
            head = ""
        else:
            head += "Content-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n\r\n"
        self.sock.setblocking(False)
        self.out = bytearray(head.encode())  # bytes waiting for the socket
        self.sent = 0  # body bytes queued so far (offset in the file)
        self.media = 0.0
        self.answer = b""
        self.closed = False

    def queue(self, data: bytes | memoryview) -> None:
        """Queue one chunk of the body."""
        if data and self.raw:
            self.out += data
        elif data:
            self.out += f"{len(data):x}\r\n".encode() + bytes(data) + b"\r\n"

    def flush(self) -> None:
        """Write what the socket takes now."""
        while self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            del self.out[:n]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--streams", type=int, required=True)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--progress-dir", type=Path, required=True)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--token-file", type=Path, help="a file holding the hub's ingest token")
    p.add_argument("--protocol", type=int, choices=(1, 3), default=1,
                   help="1: chunked POST (as stock ffmpeg); 3: switch protocols, raw MPEG-TS")
    args = p.parse_args(argv)
    data = args.input.read_bytes()
    timeline = Timeline(data)
    view = memoryview(data)
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    epoch = time.time() - timeline.first_pts  # the wall time of PTS 0, as an edge sends it
    token = args.token_file.read_text("utf-8").strip() if args.token_file else None
    streams = [Stream(f"{args.prefix}{k}", args.port, args.protocol, epoch, token)
               for k in range(args.streams)]
    started = time.monotonic()
    next_progress = started
    period = DIRECT_BATCH if args.protocol == 3 else TICK
    while not stopping:
        now = time.monotonic()
        due = timeline.offset_at(now - started)
        for stream in streams:
            if due > stream.sent and len(stream.out) < 4 << 20:  # a stalled hub: stop queueing
                stream.queue(view[stream.sent:due])
                stream.sent = due
                stream.media = now - started
            stream.flush()
        if now >= next_progress:
            write_progress(args.progress_dir, streams, timeline, final=False)
            next_progress += PROGRESS_EVERY
        if due >= timeline.size:
            print("mux_pusher: the input ended; give a longer one", file=sys.stderr)
            break
        time.sleep(max(0.0, period - (time.monotonic() - now)))
    finish(streams, timeline, view)
    write_progress(args.progress_dir, streams, timeline, final=True)
    return 0


def finish(streams: list[Stream], timeline: Timeline, view: memoryview) -> None:
    """Send each stream up to a frame boundary, end its body, and read the hub's answer."""
    for stream in streams:
        end, stream.media = timeline.boundary_after(stream.sent)
        stream.queue(view[stream.sent:end])
        stream.sent = end
        if not stream.raw:
            stream.out += b"0\r\n\r\n"
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, stream)
        open_streams = len(streams)
        while open_streams and time.monotonic() < deadline:
            for key, events in selector.select(timeout=1.0):
                stream = key.data
                if events & selectors.EVENT_WRITE:
                    stream.flush()
                    if not stream.out:
                        if stream.raw:  # the end of a version-3 stream: a half-close
                            stream.sock.shutdown(socket.SHUT_WR)
                        selector.modify(stream.sock, selectors.EVENT_READ, stream)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = stream.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionError:
                        chunk = b""
                    stream.answer += chunk
                    if not chunk:
                        selector.unregister(stream.sock)
                        stream.sock.close()
                        stream.closed = True
                        open_streams -= 1


def write_progress(folder: Path, streams: list[Stream], timeline: Timeline, final: bool) -> None:
    """Write one -progress style block per stream (what hub_cpu.py reads)."""
    for stream in streams:
        answered = (b'"durable_pts"' in stream.answer if stream.raw
                    else stream.answer.startswith(b"HTTP/1.1 200"))
        ok = final and stream.closed and answered
        state = "end" if ok else ("failed" if final else "continue")
        (folder / f"{stream.name}.txt").write_text(
            f"total_size={stream.sent}\nout_time_us={round(stream.media * 1e6)}\n"
            f"progress={state}\n", "utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
