"""The ingest protocol's version 3 ("direct") client: raw MPEG-TS after an HTTP upgrade.

The hub gives the socket itself to its ffmpeg, so what the edge sends is read by ffmpeg in
batches (docs/design/protocol.md, "Version 3"). The edge therefore sends what its encoder made
in the last ``BATCH_SECONDS`` at once rather than frame by frame, which halves the wake-ups of
the hub's ffmpeg, except while someone watches the camera live: the hub then says
``{"live": true}`` and each frame goes out at once. The acks mean what they mean in version 2.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from .errors import HubClosed, HubRejected, HubUnreachable
from .uplink import (
    RECV_SIZE, RESPONSE_TIMEOUT, SEND_TIMEOUT, AckLines, HubAddress, HubResponse,
    UplinkRequest, connect, describe, first_line, ingest_path, phrase, recv_before,
    request_headers,
)

UPGRADE = "nvr-mpegts/3"
BATCH_SECONDS = 0.5  # as the hub's ffmpeg reads (direct.LOWAT_SECONDS)
HEAD_LIMIT = 64 * 1024  # the hub's answer head, and a refusal's text, are far shorter
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ?([^\r\n]*)")
_REFUSAL = re.compile(r"(\d{3}) (.*)", re.DOTALL)  # an admission refusal after the 101


class DirectConnection(UplinkRequest):
    """One version-3 request: the upgrade, then raw MPEG-TS out in batches and ack lines in.

    The same interface as ``uplink.HubConnection`` (``send``, ``poll``, ``finish``), so the live
    sender uses either. Raises HubRejected when the hub refuses the upgrade (a 400 from a hub
    that does not take version 3 among them: the caller falls back to version 2).
    """

    protocol = 3

    def __init__(
        self, hub: HubAddress, camera: str, epoch: float, *,
        on_ack: Callable[[float], None] | None = None,
        on_live: Callable[[bool], None] | None = None, batch_seconds: float = BATCH_SECONDS,
        **header_options: Any,
    ) -> None:
        self.hub, self.camera = hub, camera
        self.opened_at = time.monotonic()
        self.acks = AckLines(on_ack, on_live)
        self.batch_seconds = batch_seconds
        self._batch = bytearray()
        self._batch_since = 0.0  # when the oldest unsent byte was given to send()
        self._closed = False  # the hub closed its side
        self._sock = connect(hub)
        try:
            self._sock.sendall(self._head(epoch, header_options))
            self._read_answer()
        except BaseException:
            self._sock.close()
            raise

    @property
    def unsent(self) -> int:
        """Bytes given to send() that wait for their batch."""
        return len(self._batch)

    def send(self, data: bytes) -> None:
        """Queue one frame's bytes; send the batch once it is old enough (or at once, watched)."""
        self.poll()
        if not data:
            return
        if not self._batch:
            self._batch_since = time.monotonic()
        self._batch += data
        self._flush_if_due()

    def poll(self) -> None:
        """Read the hub's lines so far, without blocking; send a batch that is due; raise if
        the hub ended the stream."""
        self._read_lines()
        self._flush_if_due()

    def finish(self, timeout: float = RESPONSE_TIMEOUT) -> HubResponse:
        """Send what is queued, half-close, and wait for the hub's ``done``."""
        self.poll()
        self._flush()
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise HubUnreachable(
                f"ending the stream to {self.hub.netloc}: {describe(exc)}") from exc
        deadline = time.monotonic() + timeout
        while not self._closed:
            data = recv_before(self._sock, self.hub, deadline)
            if not data:
                self._closed = True
            self.acks.feed(data)
        if self.acks.done is None:
            self._raise_if_closed()
        return HubResponse(200, "OK", json.dumps(self.acks.done), self.acks.done)

    def _head(self, epoch: float, header_options: dict[str, Any]) -> bytes:
        headers = request_headers(self.hub, epoch, protocol=3, **header_options)
        headers += [("Connection", "Upgrade"), ("Upgrade", UPGRADE)]
        lines = [f"POST {ingest_path(self.camera)} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _read_answer(self) -> None:
        """Wait for the 101 (keeping any lines after it); raise HubRejected for anything else."""
        deadline = time.monotonic() + RESPONSE_TIMEOUT
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = recv_before(self._sock, self.hub, deadline)
            if not chunk:
                raise HubUnreachable(f"{self.hub.netloc} closed the connection")
            data += chunk
            if len(data) > HEAD_LIMIT:
                raise HubUnreachable(f"{self.hub.netloc} sent an answer too long to be one")
        head, _, rest = data.partition(b"\r\n\r\n")
        match = _STATUS_LINE.match(head)
        if match is None:
            raise HubUnreachable(f"{self.hub.netloc} sent a malformed answer: {head[:80]!r}")
        status, reason = int(match[1]), match[2].decode("latin-1").strip()
        if status == 101:
            self.acks.feed(rest)
            return
        body = rest  # the refusal's text: read on until the hub closes (bounded)
        with contextlib.suppress(HubUnreachable):  # the status is the answer; the text helps
            while len(body) < HEAD_LIMIT and b"\n" not in body:
                chunk = recv_before(self._sock, self.hub, deadline)
                if not chunk:
                    break
                body += chunk
        raise HubRejected(status, reason or phrase(status), first_line(body))

    def _read_lines(self) -> None:
        """Take the lines the hub sent so far; raise if it ended the stream."""
        while not self._closed:
            data = self._recv_now()
            if data is None:
                break
            if not data:
                self._closed = True
            self.acks.feed(data)
        self._raise_if_closed()

    def _recv_now(self) -> bytes | None:
        self._sock.settimeout(0.0)  # a timeout would make Python wait for the socket first
        try:
            return self._sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise HubUnreachable(f"reading from {self.hub.netloc}: {describe(exc)}") from exc
        finally:
            self._sock.settimeout(SEND_TIMEOUT)

    def _raise_if_closed(self) -> None:
        reason = self.acks.closed_reason
        if reason is not None:
            refused = _REFUSAL.fullmatch(reason)
            if refused:  # admission happens after the 101: its refusal is a closing line
                raise HubRejected(int(refused[1]), phrase(int(refused[1])), refused[2])
            raise HubClosed(f"{self.hub.netloc} closed the stream: {reason}", reason)
        if self._closed and self.acks.done is None:
            raise HubUnreachable(f"{self.hub.netloc} closed the connection")

    def _flush_if_due(self) -> None:
        if self._batch and (self.acks.live
                            or time.monotonic() - self._batch_since >= self.batch_seconds):
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        try:
            self._sock.sendall(self._batch)
        except OSError as exc:
            try:  # the hub may have said why it closed: the more useful error
                self._read_lines()
            except HubUnreachable:
                pass
            raise HubUnreachable(f"sending to {self.hub.netloc} failed: {describe(exc)}") from exc
        self._batch.clear()

