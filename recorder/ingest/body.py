"""Incremental decoders of an ingest request's body: HTTP/1.1 chunked, or a Content-Length.

h11 parses the request head; the body of a stream that runs for days is decoded here instead,
a batch at a time: h11 makes one event object per chunk, which was a tenth of the hub's CPU
per camera (scripts/bench/hub_cpu.py). The rules are RFC 9112's, section 7.1: a chunk size is
hexadecimal, optionally followed by extensions after ";" (ignored); the last chunk has size 0
and is followed by optional trailer fields and an empty line.
"""

from __future__ import annotations

MAX_LINE = 4096  # a chunk-size line or a trailer field longer than this is an attack
MAX_TRAILERS = 64
MAX_CHUNK = 1 << 40  # a chunk size this large is not a camera's (and keeps ints small)
_HEX = frozenset(b"0123456789abcdefABCDEF")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class BodyError(Exception):
    """The body's framing is broken (the message says how)."""


class ChunkedDecoder:
    """Decodes a chunked body fed in arbitrary pieces."""

    def __init__(self) -> None:
        self._state = _SIZE
        self._left = 0  # bytes of the current chunk's data still to come
        self._carry = b""  # an incomplete line (or CRLF) from the previous piece
        self._trailers = 0

    @property
    def ended(self) -> bool:
        """Tell whether the last chunk and the trailer section have been read."""
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body; return the payload they complete (maybe empty)."""
        if self._carry:
            data, self._carry = self._carry + data, b""
        out: list[memoryview] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end and self._state != _DONE:
            if self._state == _DATA:
                take = min(self._left, end - pos)
                out.append(view[pos:pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
            elif self._state == _DATA_END:
                if end - pos < 2:
                    self._carry = data[pos:]
                    break
                if data[pos:pos + 2] != b"\r\n":
                    raise BodyError("a chunk's data is not followed by CRLF")
                pos += 2
                self._state = _SIZE
            else:
                line_end = data.find(b"\r\n", pos, pos + MAX_LINE + 2)
                if line_end < 0:
                    if end - pos > MAX_LINE:
                        raise BodyError(f"a chunk line is longer than {MAX_LINE} bytes")
                    self._carry = data[pos:]
                    break
                self._line(data[pos:line_end])
                pos = line_end + 2
        return b"".join(out) if len(out) != 1 else out[0].tobytes()

    def _line(self, line: bytes) -> None:
        if self._state == _SIZE:
            size = chunk_size(line)
            self._left = size
            self._state = _DATA if size else _TRAILER
        elif not line:
            self._state = _DONE  # the empty line after the trailer fields
        else:
            self._trailers += 1
            if self._trailers > MAX_TRAILERS or b":" not in line:
                raise BodyError("the trailer section is not header fields")


def chunk_size(line: bytes) -> int:
    """Parse a chunk-size line (hex digits, then optional ';' extensions); raise BodyError."""
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
        raise BodyError(f"bad chunk size line {line[:40]!r}")
    size = int(digits, 16)
    if size > MAX_CHUNK:
        raise BodyError(f"a chunk of {size} bytes is too large")
    return size


class LengthDecoder:
    """Decodes a body of a known Content-Length."""

    def __init__(self, length: int) -> None:
        self._left = length

    @property
    def ended(self) -> bool:
        """Tell whether every byte of the body has been read."""
        return self._left == 0

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes; return those that belong to the body."""
        take = min(self._left, len(data))
        self._left -= take
        return data if take == len(data) else data[:take]

