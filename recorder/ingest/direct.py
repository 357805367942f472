"""Protocol version 3 ("direct"): the edge's own socket becomes its ffmpeg's stdin.

After the hub answers ``101 Switching Protocols`` (docs/design/protocol.md, "Version 3"), the
edge sends raw MPEG-TS and the hub never reads it: ffmpeg does, straight from the socket, so no
byte passes through Python. What the hub still needs it gets from the kernel:

- the first packets and the first keyframe, by peeking (``MSG_PEEK``) before ffmpeg starts;
- the bytes received, from ``TCP_INFO``; the bytes not read yet, from ``SIOCINQ``;
- fewer wake-ups for ffmpeg: ``SO_RCVLOWAT`` holds its read until about ``LOWAT_SECONDS`` of
  the stream has arrived, as the relay's batches do (without it ffmpeg woke for every frame
  and cost three times as much: scripts/bench/README.md);
- its acknowledgement lines go out with ``MSG_DONTWAIT``: ffmpeg needs the socket blocking, and
  a peer that never reads must not block the event loop.

(The live view of such a stream follows ffmpeg's open segment file: supervise/live.py.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import termios

from recorder.ingest.protocol import encode_live

# struct tcp_info (linux/tcp.h): tcpi_bytes_received is a u64 at this offset (Linux >= 4.1)
_TCP_INFO_SIZE = 232
_BYTES_RECEIVED_AT = 128
# tcpi_state (its first byte) once the peer's FIN came: TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING
_FIN_RECEIVED_STATES = frozenset({6, 8, 9, 11})
_ESTABLISHED = 1
_SIOCINQ = getattr(termios, "FIONREAD", 0x541B)
LOWAT_SECONDS = 0.5  # how much of the stream ffmpeg's read waits for (see set_rate)
# what one read of ffmpeg's asks for (its pipe: protocol reads 64 KiB): a higher mark adds
# nothing, since Linux holds a read for min(mark, asked) bytes. A read takes what is queued and
# then sleeps until the bytes queued since reach the mark (so up to twice the mark), and its
# mark is fixed when it starts: a stream that slows down waits at most that for it.
LOWAT_MAX = 64 * 1024
TS_PACKET = 188
# the receive buffer, so that a stream that does not start at a keyframe can be peeked at up to
# its first one (Linux's default window stays at 128 KiB while nothing is read: a GOP is larger)
PEEK_BUFFER_BYTES = 2 * 1024 * 1024


class DirectSocket:
    """The hub's own handle on a version-3 stream's socket (a duplicate of the server's)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # bytes of the connection the hub read itself (the request head): not the stream's
        self._head = self._received_total() - self.queued()
        self._begun = b""  # the rest of a line the peer's window took only part of
        self._waiting: bytes | None = None  # the newest line, not begun yet
        self._hint: bytes | None = None  # a "live" line, not begun yet: sent before any ack
        self._lowat = 1

    @classmethod
    def take(cls, server_sock: socket.socket) -> DirectSocket:
        """Duplicate the server's socket (asyncio keeps and later closes its own descriptor)."""
        duplicate = socket.socket(fileno=os.dup(server_sock.fileno()))
        duplicate.setblocking(False)
        with contextlib.suppress(OSError):  # a bigger window to peek for the first keyframe in
            duplicate.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEEK_BUFFER_BYTES)
        return cls(duplicate)

    def fileno(self) -> int:
        """The descriptor ffmpeg gets as its stdin (see hand_over)."""
        return self.sock.fileno()

    # -- before ffmpeg reads ---------------------------------------------------------------

    def peek(self, size: int = PEEK_BUFFER_BYTES) -> bytes:
        """What has arrived and is not read yet, without taking it (b"" if nothing)."""
        try:
            return self.sock.recv(size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return b""

    def discard(self, count: int) -> int:
        """Read and forget the first ``count`` bytes (already peeked); return how many went."""
        gone = 0
        while gone < count:
            try:
                data = self.sock.recv(min(count - gone, 1 << 20), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            gone += len(data)
        return gone

    def hand_over(self) -> int:
        """Make the socket blocking for ffmpeg (its reads must sleep, not spin) and return it.

        The flag is shared with every duplicate, the server's included: from now on the hub
        only sends with MSG_DONTWAIT (send_line) and never reads.
        """
        os.set_blocking(self.sock.fileno(), True)
        return self.sock.fileno()

    # -- while ffmpeg reads ------------------------------------------------------------------

    def received(self) -> int:
        """Bytes of the stream (after the request head) the kernel has received."""
        return max(self._received_total() - self._head, 0)

    def delivered(self) -> int:
        """Bytes of the stream ffmpeg has read (or the hub skipped before it started)."""
        return max(self.received() - self.queued(), 0)

    def queued(self) -> int:
        """Bytes received and not read yet."""
        try:
            raw = fcntl.ioctl(self.sock.fileno(), _SIOCINQ, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", raw)[0]

    def set_rate(self, bytes_per_second: float) -> None:
        """Let ffmpeg's reads wait for about LOWAT_SECONDS of a stream this fast."""
        lowat = int(min(max(bytes_per_second * LOWAT_SECONDS, 1), LOWAT_MAX))
        # a new mark may wake ffmpeg at once: only a change of a quarter or more is worth it
        if lowat == 1 or not 0.8 < lowat / self._lowat < 1.25:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
                self._lowat = lowat

    def end_input(self) -> None:
        """Make ffmpeg's next read past the queued bytes return end of input (the hub ends
        the stream: a stall, a disconnect, shutdown); it then closes its segment normally."""
        self.set_rate(0)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)

    def peer_state(self) -> str:
        """"open", "closed" (the peer sent FIN) or "reset", from the TCP state: reading would
        consume a reset (and ffmpeg's own read may already have)."""
        info = self._tcp_info()
        if len(info) < 1 or info[0] == _ESTABLISHED:
            return "open"
        return "closed" if info[0] in _FIN_RECEIVED_STATES else "reset"

    def send_live(self, watched: bool) -> bool:
        """Tell the edge whether someone watches (it then sends each frame at once)."""
        self._hint = encode_live(watched)
        return self._send_queued()

    def send_line(self, line: bytes) -> bool:
        """Send a line without ever waiting; False when the peer's window is full.

        Acks only move on, so an unsent line is replaced by a newer one (a line already begun
        is finished first): a peer that never reads costs one line of memory, not a queue.
        Raises OSError when the peer is gone.
        """
        self._waiting = line
        return self._send_queued()

    def _send_queued(self) -> bool:
        while True:
            if not self._begun:
                if self._hint is not None:
                    self._begun, self._hint = self._hint, None
                elif self._waiting is None:
                    return True
                else:
                    self._begun, self._waiting = self._waiting, None
            try:
                sent = self.sock.send(self._begun, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self._begun, self._waiting, self._hint = b"", None, None
                raise
            self._begun = self._begun[sent:]

    def close(self) -> None:
        """Close the hub's duplicate (the connection ends when every copy is closed)."""
        self.sock.close()

    def __enter__(self) -> DirectSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tcp_info(self) -> bytes:
        try:
            return self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        except OSError:
            return b""

    def _received_total(self) -> int:
        info = self._tcp_info()
        if len(info) < _BYTES_RECEIVED_AT + 8:
            return 0
        # the peer's FIN takes a sequence number too: it is counted as a byte
        fin = info[0] in _FIN_RECEIVED_STATES
        return struct.unpack_from("Q", info, _BYTES_RECEIVED_AT)[0] - fin

