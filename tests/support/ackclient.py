"""A minimal ingest protocol v2 client for tests: h11 over a socket, acks read in a thread.

It is written from docs/design/protocol.md ("Version 2"), independently of the edge's
uplink, so the hub is tested against the contract rather than against one client.
"""

from __future__ import annotations

import socket
import threading
import time

import h11

from recorder.ingest.protocol import Ack, decode_line


class AckClient:
    """One v2 request: send the head, stream MPEG-TS, collect the hub's ack lines."""

    def __init__(self, port: int, camera: str, epoch: float, mode: str = "live",
                 backfill_id: str | None = None, extra: dict[str, str] | None = None,
                 token: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.http = h11.Connection(h11.CLIENT)
        self.lock = threading.Lock()
        self.status: int | None = None
        self.body = b""
        self.acks: list[Ack] = []
        self.ended = threading.Event()
        headers = [("Host", "hub"), ("Content-Type", "video/mp2t"),
                   ("Transfer-Encoding", "chunked"), ("X-NVR-Protocol", "2"),
                   ("X-NVR-Stream-Epoch", f"{epoch:.6f}"), ("X-NVR-Mode", mode)]
        if backfill_id is not None:
            headers.append(("X-NVR-Backfill-Id", backfill_id))
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        headers += list((extra or {}).items())
        self._send(h11.Request(method="POST", target=f"/ingest/v1/{camera}", headers=headers))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _send(self, event: h11.Event) -> None:
        with self.lock:
            data = self.http.send(event)
        if data:
            self.sock.sendall(data)

    def send(self, data: bytes, chunk: int = 64 * 1024, rate: float | None = None) -> None:
        """Send body bytes in chunks, at ``rate`` bytes per second if given."""
        for offset in range(0, len(data), chunk):
            if self.ended.is_set():
                return
            self._send(h11.Data(data=data[offset:offset + chunk]))
            if rate:
                time.sleep(chunk / rate)  # pacing an upload, as an encoder would

    def end(self) -> None:
        """End the body cleanly (the final zero-length chunk)."""
        self._send(h11.EndOfMessage())

    def _read(self) -> None:
        pending = b""
        try:
            while True:
                raw = self.sock.recv(65536)
                with self.lock:
                    self.http.receive_data(raw)
                    events = self._drain_events()
                for event in events:
                    if isinstance(event, h11.Response):
                        self.status = event.status_code
                    elif isinstance(event, h11.Data):
                        pending = self._take_lines(pending + bytes(event.data))
                    elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                        return
                if not raw:
                    return
        except (OSError, h11.RemoteProtocolError):
            return
        finally:
            self.ended.set()

    def _drain_events(self) -> list[h11.Event]:
        events = []
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return events
            events.append(event)
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return events

    def _take_lines(self, buffered: bytes) -> bytes:
        *lines, rest = buffered.split(b"\n")
        for line in lines:
            if self.status == 200 and line.strip():
                self.acks.append(decode_line(line))
            else:
                self.body += line + b"\n"
        return rest

    def wait_end(self, timeout: float = 30.0) -> Ack | None:
        """Wait for the response to end; return its last line (done or closed)."""
        if not self.ended.wait(timeout):
            raise AssertionError(f"no end of the ack stream within {timeout:g} s")
        return self.acks[-1] if self.acks else None

    def durable(self) -> list[float]:
        """Every durable_pts the hub sent, in order (acks and the done line)."""
        return [a.durable_pts for a in self.acks if a.durable_pts is not None]

    def close(self) -> None:
        """Close the socket (the reader thread ends with it)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(5)
