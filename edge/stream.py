"""One camera's pipeline: capture -> overlay -> encode -> spool, live request, backfill.

Three threads per camera, so capture and encoding never wait for the network:

- capture (``run_capture``) keeps the newest frame in a one-slot buffer;
- the encoder (this worker) runs one timeline for up to 12 h, across reconnects: every frame
  goes to the spool and, when a live request is open, to the ``LiveTap``;
- the live sender (``LiveSender``) opens live requests, starting each at a keyframe, and
  hands the hub's acks to the spool; the ``Backfiller`` uploads what the spool still holds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .backfill import Backfiller
from .backoff import Backoff, Outage
from .capture import Frame, LatestFrame, run_capture
from .cli import StreamConfig
from .direct_uplink import DirectConnection
from .encoder import TICKS_PER_SECOND, Chunk, Encoder, EncoderSettings
from .errors import HubClosed, HubError, HubRejected, HubUnreachable
from .face_tracker import SightingTracker
from .face_uplink import MAX_QUEUED as MAX_QUEUED_SIGHTINGS, FaceReporter
from .faces import FaceLoop, FaceWorker, WorkerOptions
from .motion import MotionEvent, MotionSettings, MotionWorker
from .motion_uplink import MotionReporter, SettingsChoice
from .overlay import FaceBoxes, Overlay
from .reports import EventQueue
from .spool import NullSpool, Spool
from .tap import END, Frame as TapFrame, LiveTap, Start
from .uplink import HubAddress, HubConnection, ingest_path

logger = logging.getLogger(__name__)

# PTS wraps after 2^33 ticks (26.5 h): start a new timeline well before (protocol.md).
MAX_REQUEST_SECONDS = 12 * 3600.0
# A v1 hub answers a rejection within moments; a request that streamed this long without one
# is taken as accepted, which ends an outage. A v2 hub answers 200 at once.
ACCEPTED_AFTER = 2.0
# Once the hub has spoken v2, a request it leaves unanswered this long is taken as stuck.
V2_ANSWER_TIMEOUT = 5.0
# The hub finishes and catalogs the last segment before it answers the end of a request.
FINISH_TIMEOUT = 8.0
START_TIMEOUT = 5.0  # for the keyframe a live request starts at
UNREACHABLE_MAX_DELAY = 5.0
# A v2 hub acks each finished segment. Footage sent this far (or 3 ack steps, if the hub's
# segments are longer) past the last ack means the link eats packets without a reset. Armed
# once an ack was seen, so a hub with long segments is never dropped before its first ack.
ACK_TIMEOUT = 60.0
FRAME_WAIT = 0.25
CAPTURE_JOIN_TIMEOUT = 2.0
SENDER_JOIN_TIMEOUT = FINISH_TIMEOUT + 2.0
BACKFILL_JOIN_TIMEOUT = 3.0
MOTION_JOIN_TIMEOUT = 2.0
REPORTER_JOIN_TIMEOUT = 4.0  # motion_uplink.FINAL_SEND_SECONDS, plus one request
FACES_JOIN_TIMEOUT = 5.0  # faces.STOP_JOIN for the worker process, then its last reports


def ticks(seconds: float) -> int:
    """Return 90 kHz ticks for a PTS in seconds (as acks carry it)."""
    return round(seconds * TICKS_PER_SECOND)


class StreamWorker(threading.Thread):
    """Runs one camera until stop is set, its file ends, or its source fails for good."""

    def __init__(
        self,
        config: StreamConfig,
        hub: HubAddress,
        stop: threading.Event,
        *,
        spool: Spool | None = None,
        backfill_rate: int = 4_000_000,
        max_request_seconds: float = MAX_REQUEST_SECONDS,
        accepted_after: float = ACCEPTED_AFTER,
        ack_timeout: float = ACK_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name=f"stream-{config.name}", daemon=True)
        self.config = config
        self.hub = hub
        self.stop = stop
        self.max_request_seconds = max_request_seconds
        self.failed = False
        self.log = logger.getChild(config.name)
        self.spool = spool if spool is not None else NullSpool()
        self._slot = LatestFrame()
        self._settings = EncoderSettings(
            width=config.width, height=config.height, fps=config.fps, bitrate=config.bitrate
        )
        self._overlay = Overlay(hub.location or "", config.name)
        self._uploads_stop = threading.Event()  # backfill stops once the encoder ended
        # motion detection and its reports (None: config.motion is None)
        self.motion: MotionWorker | None = None
        self.reporter: MotionReporter | None = None
        if config.motion is not None:
            self._make_motion()
        # face recognition (None: no --faces); it waits for motion, so it needs the detector
        self.faces: FaceLoop | None = None
        self.face_reporter: FaceReporter | None = None
        self.face_boxes: FaceBoxes | None = None
        self._faces_gate_logged = False
        if config.faces is not None and self.motion is not None:
            self._make_faces()
        self.tap = LiveTap(self.spool)
        self.sender = LiveSender(self, accepted_after=accepted_after, ack_timeout=ack_timeout,
                                 backoff=backoff)
        self.backfiller = (
            Backfiller(config.name, hub, spool, self.sender.up, self._uploads_stop, self.log,
                       rate_bits=backfill_rate)
            if isinstance(spool, Spool) else None
        )

    def _make_motion(self) -> None:
        local = MotionSettings(enabled=bool(self.config.motion),
                               sensitivity=self.config.motion_sensitivity)
        # beside the footage spool, where a camera name cannot collide (no leading dot)
        folder = (self.spool.folder.parent / ".motion" / self.config.name
                  if isinstance(self.spool, Spool) else None)
        self.motion = MotionWorker(self.config.name, local, self._report_motion, self.stop,
                                   log=self.log)
        choice = SettingsChoice(local, self.motion.apply, current=local)
        self.reporter = MotionReporter(self.config.name, self.hub, EventQueue(folder, log=self.log),
                                       threading.Event(), choice, log=self.log)

    def _make_faces(self) -> None:
        faces = self.config.faces
        assert faces is not None
        if not self.config.motion:
            self.log.warning("--faces with --no-motion: faces wait for motion detection, which "
                             "is off until the hub's settings turn it on")
        folder = (self.spool.folder.parent / ".faces" / self.config.name
                  if isinstance(self.spool, Spool) else None)
        queue = EventQueue(folder, MAX_QUEUED_SIGHTINGS, log=self.log, key_field="sighting_key",
                           kind="faces")
        self.face_reporter = FaceReporter(
            self.config.name, self.hub, queue, threading.Event(), log=self.log,
            on_gallery=lambda gallery: self._face_loop().set_gallery(gallery),
            on_supported=lambda supported: self._face_loop().set_supported(supported))
        options = WorkerOptions(min_size=faces.min_size, detect_width=faces.detect_width or None,
                                log_level=self.log.getEffectiveLevel())
        worker = FaceWorker(self.config.name, self.config.width, self.config.height,
                            rate=faces.rate, options=options, log=self.log)
        tracker = SightingTracker(self.face_reporter.report, debounce=faces.debounce)
        self.face_boxes = FaceBoxes() if faces.overlay else None
        # its own stop: it ends after the encoder (_finish), which may offer frames until then
        self.faces = FaceLoop(self.config.name, worker, tracker, threading.Event(),
                              boxes=self.face_boxes, log=self.log)

    def _face_loop(self) -> FaceLoop:
        assert self.faces is not None
        return self.faces

    def _report_motion(self, event: MotionEvent) -> None:
        assert self.reporter is not None
        self.reporter.report(event)

    def run(self) -> None:
        """Capture in a helper thread, encode here, send and backfill in two more."""
        self.log.info(
            "starting: %s source %s -> %s%s%s", self.config.source.kind,
            self.config.source.display(), self.hub.netloc, ingest_path(self.config.name),
            f" (spool {self.spool.folder})" if isinstance(self.spool, Spool) else " (no spool)",
        )
        capture = threading.Thread(
            target=run_capture, args=(self.config, self._slot, self.stop, self.log),
            name=f"capture-{self.config.name}", daemon=True,
        )
        capture.start()
        self.tap.open()  # the first live request starts with the timeline's first frame
        self.sender.start()
        if self.backfiller:
            self.backfiller.start()
        # reports and settings polls wait for the first accepted stream (the hub makes the
        # camera then); detection starts at once and its reports queue
        if self.motion is not None and self.reporter is not None:
            self.motion.start()
            self.reporter.ready = self.sender.up
            self.reporter.start()
        if self.faces is not None and self.face_reporter is not None:
            self.faces.start()
            self.face_reporter.ready = self.sender.up
            self.face_reporter.start()
        try:
            self._encode_loop()
        finally:
            self.tap.end()
            self._finish(capture)
        self.failed = self._slot.error is not None
        self.log.info("stream ended (%d frames dropped)", self._slot.dropped)
        if isinstance(self.spool, Spool) and (pending := self.spool.pending_seconds()):
            self.log.info("spool keeps %.1f s of footage the hub has not acknowledged; it is "
                          "uploaded when the edge runs again", pending)

    def _finish(self, capture: threading.Thread) -> None:
        capture.join(CAPTURE_JOIN_TIMEOUT)
        if self.motion is not None and self.reporter is not None:
            self.motion.finish()  # an event going on ends here, and is reported
            self.motion.join(MOTION_JOIN_TIMEOUT)
            self.reporter.finish()
        if self.faces is not None and self.face_reporter is not None:
            self.faces.finish()  # the worker stops; open sightings are reported as ended
            self.faces.join(FACES_JOIN_TIMEOUT)
            self.face_reporter.finish()
            self.log.info("faces: %d frame(s) checked, %d skipped (the worker was busy)",
                          self.faces.worker.offered, self.faces.worker.skipped)
        self._uploads_stop.set()
        if self.backfiller:  # a half-sent backfill is simply sent again next time
            self.backfiller.join(BACKFILL_JOIN_TIMEOUT)
        self.sender.join(SENDER_JOIN_TIMEOUT)
        for reporter in (self.reporter, self.face_reporter):
            if reporter is not None:  # what it could not send stays queued for the next run
                reporter.join(REPORTER_JOIN_TIMEOUT)
        self.spool.close()

    def _encode_loop(self) -> None:
        encoder: Encoder | None = None
        epoch_ms = 0
        try:
            while (frame := self._next_frame()) is not None:
                if encoder is None or self._timeline_over(encoder, frame):
                    if encoder is not None:
                        self.log.info("starting a new timeline so PTS never wrap")
                        self._end_timeline(encoder, epoch_ms)
                    encoder, epoch_ms = self._new_timeline(frame)
                self._encode(encoder, epoch_ms, frame)
        except Exception:  # an encoder or disk fault: this camera stops, the others go on
            self.log.exception("encoding failed")
            self._slot.error = self._slot.error or "encoder failed"
        finally:
            if encoder is not None:
                self._end_timeline(encoder, epoch_ms)

    def _new_timeline(self, frame: Frame) -> tuple[Encoder, int]:
        # The epoch travels with 1 ms precision; PTS 0 is that instant exactly.
        epoch_ms = round(frame.wall * 1000)
        start = frame.monotonic - (frame.wall - epoch_ms / 1000)
        return Encoder(self._settings, start_monotonic=start), epoch_ms

    def _timeline_over(self, encoder: Encoder, frame: Frame) -> bool:
        return frame.monotonic - encoder.start_monotonic >= self.max_request_seconds

    def _encode(self, encoder: Encoder, epoch_ms: int, frame: Frame) -> None:
        if self.motion is not None:  # before the overlay: the clock must never count as motion
            self.motion.offer(frame.image, frame.monotonic, frame.wall)
            if self.faces is not None:
                self._offer_face(frame)
        self._overlay.draw(frame.image, frame.wall)
        if self.face_boxes is not None:
            self.face_boxes.draw(frame.image, frame.monotonic)
        if self.tap.keyframe_wanted():
            encoder.force_keyframe()
        chunk = encoder.encode_chunk(frame.image, frame.monotonic)
        starts_live = self.tap.begin_if_wanted(epoch_ms, chunk)
        self.spool.append(epoch_ms, chunk, boundary=starts_live)
        self.tap.offer(epoch_ms, chunk)

    def _offer_face(self, frame: Frame) -> None:
        """Hand the frame to the face worker while there is motion (the gate), at its rate."""
        assert self.motion is not None and self.faces is not None
        if not self.motion.settings.enabled:
            if not self._faces_gate_logged:
                self.log.info("faces paused: motion detection is off")
                self._faces_gate_logged = True
            return
        self._faces_gate_logged = False
        if frame.monotonic < self.motion.moving_until:
            self.faces.worker.offer(frame.image, frame.monotonic, frame.wall)

    def _end_timeline(self, encoder: Encoder, epoch_ms: int) -> None:
        try:
            data = encoder.finish()
            if data:
                chunk = Chunk(data, max(encoder.last_pts, 0), False)
                self.spool.append(epoch_ms, chunk)
                self.tap.offer(epoch_ms, chunk)
        finally:
            encoder.close()
            self.spool.close_timeline()

    def _next_frame(self) -> Frame | None:
        while not self.stop.is_set():
            frame = self._slot.get(FRAME_WAIT)
            if frame is not None or self._slot.ended:
                return frame
        return None


class LiveSender(threading.Thread):
    """Keeps a live request open while the camera runs, reconnecting with backoff."""

    def __init__(
        self, worker: StreamWorker, *, accepted_after: float, ack_timeout: float = ACK_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(name=f"live-{worker.config.name}", daemon=True)
        self.worker = worker
        self.log = worker.log
        self.accepted_after = accepted_after
        self.ack_timeout = ack_timeout
        self._ack_step = 0.0  # the longest PTS step between two acks seen: the hub's segments
        self._last_ack = 0  # PTS of the current request's last ack (its start before one)
        self.up = threading.Event()  # a live request is accepted right now
        self.hub_v2 = False  # the hub answered v2 once: silence from it now means trouble
        # version 3 (direct_uplink) unless asked for 2, over TLS (ffmpeg reads the socket) or
        # once the hub refused it
        self.direct = worker.hub.protocol == 3 and worker.hub.tls is None
        # A configuration error (401, 400, 415) is retried every 30 s; anything else (refused,
        # reset, 409 while the hub still holds the old connection, 503) backs off only up to
        # 5 s, so the live stream resumes within seconds of the link's return (the spool has
        # the footage meanwhile, and a refused connection costs the hub nothing).
        self._backoff = backoff or Backoff()
        self._reconnect = backoff or Backoff(maximum=UNREACHABLE_MAX_DELAY)
        self._outage = Outage(self.log, "hub")
        self._streamed_once = False
        self._next_start: Start | None = None
        self._ended = False

    def run(self) -> None:
        """Open live requests until the stream ends."""
        try:
            while not self._ended:
                self._try_once()
        finally:
            self._close_tap()

    def _try_once(self) -> None:
        if self.worker.stop.is_set():  # no new request while stopping: the spool keeps it
            self._ended = True
            return
        if self._next_start is None:
            self.worker.tap.open()
        ok = False
        try:
            self._one_request()
            ok = True
        except HubError as exc:
            if self.worker.stop.is_set():  # shutting down: no retry
                self.log.warning("could not finish the live request cleanly: %s", exc)
                self._ended = True
                return
            if isinstance(exc, HubClosed) and exc.restarted:
                # Not an outage: the hub restarted the recorder and ended the request so that
                # acks can go on in a new one; the spool back-fills the second in between.
                self.log.info("%s; reopening the live request", exc)
                self.worker.stop.wait(self._reconnect.next_delay())
                return
            level = logging.ERROR if exc.is_config_error else logging.WARNING
            self._outage.failed(str(exc), level)
            backoff = self._backoff if exc.is_config_error else self._reconnect
            self.worker.stop.wait(backoff.next_delay(at_maximum=exc.is_config_error))
        except Exception:  # a library fault: retry, don't die
            self.log.exception("live request failed; retrying")
            self.worker.stop.wait(self._backoff.next_delay())
        finally:
            self.up.clear()
            if not ok:
                self._next_start = None
            if self._next_start is None:
                self._close_tap()

    def _close_tap(self) -> None:
        # What the request did not get acknowledged is the backfill uploader's from now on.
        for live in self.worker.tap.close():
            self.worker.spool.live_end(live)

    def _first_start(self) -> Start | None:
        if self._next_start is not None:
            start, self._next_start = self._next_start, None
            return start
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            item = self.worker.tap.get(FRAME_WAIT)
            if item is END:
                self._ended = True
                return None
            if isinstance(item, Start):
                return item
        return None  # no frames (a source reconnecting): ask again

    def _one_request(self) -> None:
        start = self._first_start()
        if start is None:
            return
        spool = self.worker.spool
        dropped = spool.take_dropped()
        self._last_ack = start.pts
        try:
            with self._connect(
                start.epoch_ms / 1000, on_ack=lambda durable: self._on_ack(start, durable),
                mode="live", spool=isinstance(spool, Spool), dropped=dropped,
            ) as conn:
                last = self._stream(conn, start)
                self._finish(conn, start, last)
        finally:
            # An accepted request reported the count; a refused one hands it to the next.
            if not self.up.is_set():
                spool.give_back_dropped(dropped)

    def _connect(self, epoch: float, **options: Any) -> HubConnection | DirectConnection:
        """Open a live request: version 3 where the hub takes it, else version 2."""
        hub, camera = self.worker.hub, self.worker.config.name
        if self.direct:
            try:
                return DirectConnection(hub, camera, epoch, on_live=self._on_live, **options)
            except HubRejected as exc:
                # 400: a hub that does not take version 3 (an older one, an old kernel); an
                # older hub may also take the head as an empty request. Auth and the rest are
                # refused alike in version 2: those stay errors.
                if exc.status != 400 and not 200 <= exc.status < 300:
                    raise
                self.direct = False
                self.log.warning("hub %s does not take protocol version 3 (%s): sending with "
                                 "version 2", hub.netloc, exc)
        return HubConnection(hub, camera, epoch, **options)

    def _on_live(self, watched: bool) -> None:
        """The hub's live view opened or closed (DirectConnection sends accordingly)."""
        self.log.debug("hub %s live view: %s", self.worker.hub.netloc,
                       "watched: each frame at once" if watched else "not watched: batches")

    def _stream(self, conn: HubConnection | DirectConnection, start: Start) -> int:
        """Send the tap's frames until END, a new timeline or an error; return the last PTS."""
        last = start.pts
        while True:
            item = self.worker.tap.get(FRAME_WAIT)
            if item is END:
                self._ended = True
                return last
            if isinstance(item, Start):
                if item.epoch_ms == start.epoch_ms:
                    continue
                self._next_start = item  # a new timeline: finish this request, open the next
                return last
            if isinstance(item, TapFrame):
                conn.send(item.chunk.data)
                last = max(last, item.chunk.pts)
            else:
                conn.poll()
            self._check_progress(conn)
            self._check_acks(conn, start, last)

    def _check_progress(self, conn: HubConnection | DirectConnection) -> None:
        if self.worker.tap.lagging:
            raise HubUnreachable(f"the link to {self.worker.hub.netloc} is too slow for the live "
                                 f"stream ({conn.camera}); the spool keeps the footage")
        if self.up.is_set():
            return
        waited = time.monotonic() - conn.opened_at
        if conn.protocol == 3:  # the 101 came before admission: a refusal comes at once
            if conn.durable_pts is not None or waited >= self.accepted_after:
                self._on_accepted(conn)
        elif conn.protocol == 2 or (not self.hub_v2 and waited >= self.accepted_after):
            self._on_accepted(conn)
        elif self.hub_v2 and waited >= V2_ANSWER_TIMEOUT:
            raise HubUnreachable(f"no answer from {self.worker.hub.netloc}")

    def _check_acks(self, conn: HubConnection | DirectConnection, start: Start, last: int) -> None:
        """Drop a v2/v3 request whose acks stopped: a link that eats packets without a reset."""
        if conn.protocol not in (2, 3) or not self._ack_step:
            return  # no acks (v1), or none seen yet: the hub's pace is unknown
        acked = ticks(conn.durable_pts) if conn.durable_pts is not None else start.pts
        limit = max(self.ack_timeout, 3 * self._ack_step)
        if (last - acked) / TICKS_PER_SECOND > limit:
            raise HubUnreachable(f"no acknowledgement from {self.worker.hub.netloc} for "
                                 f"{limit:.0f} s of footage")

    def _on_ack(self, start: Start, durable: float) -> None:
        """Delete what the ack covers, and learn how far apart the hub's acks come."""
        below = ticks(durable)
        self._ack_step = max(self._ack_step, (below - self._last_ack) / TICKS_PER_SECOND)
        self._last_ack = below
        self.worker.spool.ack(start.epoch_ms, start.pts, below)

    def _on_accepted(self, conn: HubConnection | DirectConnection) -> None:
        if conn.protocol in (2, 3) and not self.hub_v2:
            self.hub_v2 = True
            self.log.info("hub %s speaks protocol v%d: footage is deleted from the spool once "
                          "acknowledged", self.worker.hub.netloc, conn.protocol)
        elif conn.protocol not in (2, 3) and not self._streamed_once:
            self.log.info("hub %s sends no acknowledgements (protocol v1): the spool is cleared "
                          "only when a request ends cleanly", self.worker.hub.netloc)
        self.up.set()
        self._backoff.reset()
        self._reconnect.reset()
        if self._outage.active:
            self._outage.recovered()
        elif not self._streamed_once:
            self.log.info("hub %s accepted the stream", self.worker.hub.netloc)
        self._streamed_once = True

    def _finish(self, conn: HubConnection | DirectConnection, start: Start, last: int) -> None:
        response = conn.finish(FINISH_TIMEOUT)
        if response.status != 200:
            raise HubRejected(response.status, response.reason, response.body)
        if not self.up.is_set():
            self._on_accepted(conn)  # a request shorter than accepted_after counts too
        # A clean end: everything the request carried is durable (v2 "done"; v1's final 200).
        self.worker.spool.ack(start.epoch_ms, start.pts, last + 1)
        self.worker.spool.live_end(start.live)
        self.log.info("hub closed the request: %s", response.body or response.status)
