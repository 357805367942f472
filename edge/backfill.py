"""The backfill uploader: sends what the spool still holds, one span at a time, paced.

It runs only while the camera's live request is accepted (live first), uploads the oldest
unacknowledged span of closed spool files as one ``X-NVR-Mode: backfill`` request at no more
than ``rate_bits`` per second, and lets the hub's acks delete the files. Failures back off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from .backoff import Backoff
from .encoder import TICKS_PER_SECOND
from .errors import HubError, HubRejected
from .spool import Span, Spool
from .uplink import HubAddress, HubConnection

logger = logging.getLogger(__name__)

MAX_SPAN_SECONDS = 120.0  # one request: acks come per hub segment anyway
MAX_SPAN_BYTES = 64 * 1024 * 1024
SEND_SIZE = 16 * 1024  # small pieces keep the pace smooth
IDLE_WAIT = 1.0
FINISH_TIMEOUT = 30.0  # the hub segments and catalogs the tail before its "done"
BUSY_WAIT = 5.0  # 409: a backfill of this camera is still running on the hub
NOT_SUPPORTED_WAIT = 300.0  # 501 (a v1 hub) or 404: try again now and then


class Pacer:
    """Spreads bytes over time at a fixed rate (no burst beyond one piece)."""

    def __init__(
        self, bytes_per_second: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = bytes_per_second
        self._clock = clock
        self._next = clock()

    def delay(self, size: int) -> float:
        """Account for ``size`` bytes about to go; return how long to wait first."""
        now = self._clock()
        self._next = max(self._next, now)
        wait = self._next - now
        self._next += size / self.rate
        return wait


class Backfiller(threading.Thread):
    """Uploads a camera's unacknowledged spool spans while its live stream is up."""

    def __init__(
        self, camera: str, hub: HubAddress, spool: Spool, live_up: threading.Event,
        stop: threading.Event, log: logging.Logger | None = None, *, rate_bits: int = 4_000_000,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name=f"backfill-{camera}", daemon=True)
        self.camera = camera
        self.hub = hub
        self.spool = spool
        self.live_up = live_up
        self.stop_event = stop
        self.rate_bits = rate_bits
        self.log = (log or logger).getChild("backfill")
        self.uploaded_seconds = 0.0
        self._backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self._said_unsupported = False

    def run(self) -> None:
        """Upload spans until stopped."""
        while not self.stop_event.is_set():
            span = self.spool.next_span(MAX_SPAN_SECONDS, MAX_SPAN_BYTES)
            if span is None or not self.live_up.is_set():
                self.stop_event.wait(IDLE_WAIT)
                continue
            self.stop_event.wait(self._try(span))

    def _try(self, span: Span) -> float:
        """Upload one span; return how long to wait before the next."""
        try:
            self._upload(span)
        except HubRejected as exc:
            return self._on_rejected(exc)
        except HubError as exc:  # a hub that fails TLS verification: at the maximum backoff
            self.log.warning("backfill of %.1f s failed, will retry: %s", span.seconds, exc)
            return self._backoff.next_delay(at_maximum=exc.is_config_error)
        except OSError as exc:  # the spool's disk
            self.log.error("backfill cannot read the spool: %s", exc)
            return self._backoff.next_delay()
        self._backoff.reset()
        return 0.0

    def _on_rejected(self, exc: HubRejected) -> float:
        if exc.status == 409:
            return BUSY_WAIT
        if exc.status in (404, 501):
            if not self._said_unsupported:
                self.log.warning("hub takes no backfill (%s): the spool keeps the footage and "
                                 "tries again every %.0f s", exc, NOT_SUPPORTED_WAIT)
                self._said_unsupported = True
            return NOT_SUPPORTED_WAIT
        self.log.warning("backfill refused: %s", exc)
        return self._backoff.next_delay(at_maximum=exc.is_config_error)

    def _upload(self, span: Span) -> None:
        began = time.monotonic()
        pacer = Pacer(self.rate_bits / 8)
        with span.open() as reader, HubConnection(
            self.hub, self.camera, epoch=span.epoch_ms / 1000, mode="backfill",
            backfill_id=span.backfill_id, spool=True,
            on_ack=lambda d: self.spool.ack(span.epoch_ms, span.start, _ticks(d)),
        ) as conn:
            for piece in _pieces(reader.chunks(), SEND_SIZE):
                if self.stop_event.wait(pacer.delay(len(piece))):
                    return  # stopping: what was not acked is sent again after a restart
                conn.send(piece)
            response = conn.finish(FINISH_TIMEOUT)
            if response.status != 200:
                raise HubRejected(response.status, response.reason, response.body)
            # "done" (or a v1-style final 200): everything the request carried is durable.
            last = reader.files[-1].last if reader.files else span.start
            self.spool.ack(span.epoch_ms, span.start, last + 1)
        self.uploaded_seconds += span.seconds
        self.log.info("backfilled %.1f s of footage (%s) in %.1f s", span.seconds,
                      span.backfill_id, time.monotonic() - began)


def _pieces(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    for chunk in chunks:
        for i in range(0, len(chunk), size):
            yield chunk[i : i + size]


def _ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)
