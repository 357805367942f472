"""A minimal ingest protocol v3 ("direct") client for tests, written from docs/design/protocol.md.

It switches protocols, sends raw MPEG-TS on the socket, reads the hub's ack lines in a thread
and ends the stream with a half-close, independently of the edge's own uplink.
"""

from __future__ import annotations

import socket
import threading
import time

from recorder.ingest.protocol import Ack, decode_line

UPGRADE = "nvr-mpegts/3"


class DirectClient:
    """One v3 request: the head, the hub's answer, then raw MPEG-TS out and ack lines in."""

    def __init__(self, port: int, camera: str, epoch: float | None,
                 extra: dict[str, str] | None = None, upgrade: bool = True,
                 early_body: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        headers = {"Host": "hub", "X-NVR-Protocol": "3"}
        if epoch is not None:
            headers["X-NVR-Stream-Epoch"] = f"{epoch:.6f}"
        if upgrade:
            headers.update({"Connection": "Upgrade", "Upgrade": UPGRADE})
        headers.update(extra or {})
        head = f"POST /ingest/v1/{camera} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        self.sock.sendall(head.encode() + early_body)
        self.answer = self._read_head()
        self.status = int(self.answer.split(b" ", 2)[1]) if self.answer else None
        self.lines: list[Ack] = []
        self.raw = b""
        self.ended = threading.Event()
        if self.status == 101:
            self.reader = threading.Thread(target=self._read_lines, daemon=True)
            self.reader.start()
        else:  # a refusal: its text follows, then the hub closes
            while chunk := self.sock.recv(4096):
                self._rest += chunk

    @property
    def refusal(self) -> str:
        """The text of a refusal (a status other than 101)."""
        return self._rest.decode("utf-8", "replace")

    def _read_head(self) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, self._rest = data.partition(b"\r\n\r\n")
        return head

    def _read_lines(self) -> None:
        buffer = self._rest
        try:
            while True:
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self.raw += line + b"\n"
                    self.lines.append(decode_line(line))
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                buffer += chunk
        except OSError:
            pass
        finally:
            self.ended.set()

    def send(self, data: bytes, chunk: int = 32 * 1024, rate: float | None = None) -> None:
        """Send raw MPEG-TS, at ``rate`` bytes per second if given."""
        for offset in range(0, len(data), chunk):
            self.sock.sendall(data[offset:offset + chunk])
            if rate:
                time.sleep(chunk / rate)  # pacing, as an encoder would

    def end(self) -> None:
        """End the stream: a half-close (the hub answers until everything is durable)."""
        self.sock.shutdown(socket.SHUT_WR)

    def wait_end(self, timeout: float) -> Ack:
        """Wait until the hub closed the connection; return its last line."""
        if not self.ended.wait(timeout):
            raise AssertionError(f"the hub did not end the stream within {timeout} s: {self.raw!r}")
        assert self.lines, "the hub sent no line"
        return self.lines[-1]

    def durable(self) -> list[float]:
        """Every durable_pts acknowledged so far."""
        return [ack.durable_pts for ack in self.lines if ack.durable_pts is not None]

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
