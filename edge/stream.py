"""One camera's pipeline: capture -> overlay -> encode -> send, reconnecting with backoff."""

from __future__ import annotations

import logging
import threading
import time

from .backoff import Backoff, Outage
from .capture import Frame, LatestFrame, run_capture
from .cli import StreamConfig
from .encoder import Encoder, EncoderSettings
from .errors import HubError, HubRejected
from .overlay import Overlay
from .uplink import HubAddress, HubConnection, ingest_path

logger = logging.getLogger(__name__)

# PTS wraps after 2^33 ticks (26.5 h): start a new request well before (protocol.md).
MAX_REQUEST_SECONDS = 12 * 3600.0
# The hub answers a rejection within moments; a connection that streamed this long without
# one is taken as accepted, which ends an outage.
ACCEPTED_AFTER = 2.0
FRAME_WAIT = 0.25
CAPTURE_JOIN_TIMEOUT = 2.0


class StreamWorker(threading.Thread):
    """Runs one camera until stop is set, its file ends, or its source fails for good."""

    def __init__(
        self,
        config: StreamConfig,
        hub: HubAddress,
        stop: threading.Event,
        *,
        max_request_seconds: float = MAX_REQUEST_SECONDS,
        accepted_after: float = ACCEPTED_AFTER,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name=f"stream-{config.name}", daemon=True)
        self.config = config
        self.hub = hub
        self.stop = stop
        self.max_request_seconds = max_request_seconds
        self.accepted_after = accepted_after
        self.failed = False
        self.log = logger.getChild(config.name)
        self._backoff = backoff or Backoff()
        self._outage = Outage(self.log, "hub")
        self._slot = LatestFrame()
        self._settings = EncoderSettings(
            width=config.width, height=config.height, fps=config.fps, bitrate=config.bitrate
        )
        self._overlay = Overlay(hub.location or "", config.name)
        self._streamed_once = False

    def run(self) -> None:
        """Capture in a helper thread and stream its frames to the hub."""
        self.log.info(
            "starting: %s source %s -> %s%s", self.config.source.kind,
            self.config.source.display(), self.hub.netloc, ingest_path(self.config.name),
        )
        capture = threading.Thread(
            target=run_capture, args=(self.config, self._slot, self.stop, self.log),
            name=f"capture-{self.config.name}", daemon=True,
        )
        capture.start()
        try:
            self._stream_loop()
        finally:
            capture.join(CAPTURE_JOIN_TIMEOUT)
        self.failed = self._slot.error is not None
        self.log.info("stream ended (%d frames dropped)", self._slot.dropped)

    def _stream_loop(self) -> None:
        while not self.stop.is_set():
            first = self._slot.get(FRAME_WAIT)
            if first is None:
                if self._slot.ended:
                    return
                continue
            try:
                self._one_request(first)
            except HubError as exc:
                self._on_hub_error(exc)
            except Exception:  # an encoder or library fault: restart the stream, don't die
                self.log.exception("stream failed; restarting it")
                self.stop.wait(self._backoff.next_delay())

    def _on_hub_error(self, exc: HubError) -> None:
        if self.stop.is_set():
            self.log.warning("could not finish the request cleanly: %s", exc)
            return
        level = logging.ERROR if exc.is_config_error else logging.WARNING
        self._outage.failed(str(exc), level)
        self.stop.wait(self._backoff.next_delay(at_maximum=exc.is_config_error))

    def _one_request(self, first: Frame) -> None:
        """Stream from ``first`` until stop, end of source or the request's time limit."""
        with HubConnection(self.hub, self.config.name, epoch=first.wall) as conn:
            encoder = Encoder(self._settings, start_monotonic=first.monotonic)
            try:
                self._send_frames(conn, encoder, first)
                conn.send(encoder.finish())
            finally:
                encoder.close()
            self._check_final_response(conn)

    def _send_frames(self, conn: HubConnection, encoder: Encoder, frame: Frame) -> None:
        accepted = False
        while True:
            self._overlay.draw(frame.image, frame.wall)
            conn.send(encoder.encode(frame.image, frame.monotonic))
            if not accepted and time.monotonic() - conn.opened_at >= self.accepted_after:
                accepted = True
                self._on_accepted()
            if frame.monotonic - encoder.start_monotonic >= self.max_request_seconds:
                self.log.info("starting a new request so PTS never wrap")
                return
            frame = self._next_frame()
            if frame is None:
                return

    def _next_frame(self) -> Frame | None:
        while not self.stop.is_set():
            frame = self._slot.get(FRAME_WAIT)
            if frame is not None or self._slot.ended:
                return frame
        return None

    def _on_accepted(self) -> None:
        self._backoff.reset()
        if self._outage.active:
            self._outage.recovered()
        elif not self._streamed_once:
            self.log.info("hub %s accepted the stream", self.hub.netloc)
        self._streamed_once = True

    def _check_final_response(self, conn: HubConnection) -> None:
        response = conn.finish()
        if response.status != 200:
            raise HubRejected(response.status, response.reason, response.body)
        self._on_accepted()  # a stream shorter than ACCEPTED_AFTER counts too
        self.log.info("hub closed the request: %s", response.body or response.status)
