"""The hub process: recovery at start, the ingest server, pulled cameras, clean shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import datetime as dt
import logging
import signal
import ssl
import time

from sqlalchemy import select

from nvrlib import camera_urls
from nvrlib.catalog import db
from nvrlib.catalog.models import Camera, utcnow
from nvrlib.control_mark import control_dir
from nvrlib.ffmpeg_bin import log_ffmpeg_in_background
from nvrlib.redact import redact
from nvrlib.sdnotify import Notifier
from recorder import control
from recorder.config import HubConfig
from recorder.errors import IngestRejected
from recorder.health import outages
from recorder.health.alerts import AlertCenter, AlertEvent
from recorder.health.monitor import HealthMonitor
from recorder.health.motion_alerts import snapshot_attacher
from recorder.health.outages import QUIET_REASONS, OutageInfo
from recorder.ingest import backfill, tokens
from recorder.ingest.guard import IngestLimits, NewNameLimiter, source_of
from recorder.ingest.tokens import TokenCache
from recorder.supervise import marks
from recorder.supervise.marks import MarkWatcher
from recorder.ingest.protocol import TICK, DurableProgress, ProtocolFields
from recorder.ingest.tls import server_context
from recorder.ingest.events import MotionReport, settings_json
from recorder.ingest.faces import GalleryReply, SightingReport, etag_matches
from recorder.ingest.server import IngestRequest, StreamEnding, StreamSink, start_server, token_matches
from recorder.store.catalog import Catalog, FinishedSegment
from recorder.store import faces, motion
from recorder.store.identity import check_storage_identity
from recorder.store.reconcile import ReconcileReport, reconcile
from recorder.store.retention import Retention
from recorder.store.storage import Storage
from recorder.supervise import ffmpeg, live
from recorder.supervise.keyframe_motion import SegmentMotion
from recorder.supervise.segmenter import Anchor, Segmenter
from recorder.supervise.states import RestartPolicy, State

logger = logging.getLogger(__name__)

GC_THRESHOLD = 20_000  # allocations between young-generation collections (CPython: 700)
# The web app's marks (a viewer, a command) wake the hub through inotify (recorder/supervise/marks.py);
# these polls are the safety net, and the whole mechanism where inotify is not available.
LIVE_POLL_SECONDS = 0.1  # without inotify: how soon a new viewer's mark starts the live tap
LIVE_CHECK_SECONDS = 1.0  # while a tap runs: a mark grown stale, a tap that died
LIVE_SAFETY_SECONDS = 5.0  # with inotify and no tap: a missed mark
CONTROL_POLL_SECONDS = 1.0  # without inotify: commands act, tokens change, within this
CONTROL_SAFETY_SECONDS = 10.0  # with inotify: a change the web app made without its nudge
STATUS_SECONDS = 3.0  # how fresh the status rows of the admin panel are
TOKEN_RELOAD_SECONDS = 1.0  # an unknown token reloads the catalog's tokens at most this often
_QUIET_DETAILS = {"disconnected": "disconnected by an admin", "disabled": "disabled by an admin",
                  "hub_stopped": "the hub stopped"}



def settle_garbage_collector() -> None:
    """Keep Python's cycle collector off the objects that live as long as the hub.

    Everything made during start-up (modules, SQLAlchemy's mappings and compiled statements,
    the config) lives until exit, yet every full collection walked it again: perf showed the
    collector at about a sixth of the hub's CPU while it recorded 16 cameras. gc.freeze()
    moves those objects out of the collector's generations (CPython's documented use for
    long-running servers), and a larger first-generation threshold collects less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])

class Hub:
    """Owns the catalog, the storage lock, every camera's segmenter and the ingest port."""

    def __init__(self, config: HubConfig, own_process: bool = False) -> None:
        self.config = config
        self.own_process = own_process  # the hub is the process (not a test's): tune its GC
        self.storage = Storage(config.storage)
        self.engine = db.make_engine(config.db_url)
        self.catalog = Catalog(self.engine, self.storage, config.hub_id)
        # One thread owns fsync + catalog writes: segments are cataloged in order and the
        # event loop never blocks on the disk.
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="catalog")
        self.policy = RestartPolicy(initial=config.backoff_initial, maximum=config.backoff_max,
                                    fail_after=config.fail_after,
                                    failed_retry=config.failed_retry_seconds)
        self.pushed: dict[str, Segmenter] = {}
        self.push_tasks: dict[str, asyncio.Task[None]] = {}
        self.meter = control.RateMeter()
        self.control_task: asyncio.Task[None] | None = None
        self.live_task: asyncio.Task[None] | None = None
        self.taps: dict[str, live.LiveTap] = {}
        self.pulled: dict[str, Segmenter] = {}
        self._refused_pulls: dict[str, str] = {}  # camera -> URL refused as local (logged once)
        self._tap_refused: set[str] = set()  # cameras with no live view now (logged once)
        self._tapped: dict[str, Segmenter] = {}  # the segmenter each tap was started for
        self._direct_feeds: dict[str, live.DirectFeed] = {}  # version 3 taps' feeds
        self._refusals: dict[str, str] = {}  # camera -> why it is not pulled (the admin page)
        self.connections: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.server_tls = False  # the main ingest port speaks TLS
        self.tls_server: asyncio.Server | None = None  # a second, TLS port (tls_listen)
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.report: ReconcileReport | None = None
        self.alerts = AlertCenter(config.alerts, self.engine,
                                  attach=snapshot_attacher(self.storage, config.hub_id))
        self.retention = Retention(config, self.catalog, self.storage)
        self.health = HealthMonitor(self)
        self.open_outages: dict[str, OutageInfo] = {}
        # why the hub itself closed a camera's edge connection (disconnected, disabled, ...)
        self.closing: dict[str, str] = {}
        self.event_tasks: set[asyncio.Task[None]] = set()
        # systemd (Type=notify): readiness, the watchdog and a status line; a no-op elsewhere
        self.notifier = Notifier()
        self.watchdog_task: asyncio.Task[None] | None = None
        self._status_line = ""
        # version 2: one backfill upload per camera, and how far each request is durable
        self.backfills: dict[str, Segmenter] = {}
        self.progress: dict[StreamSink, DurableProgress] = {}
        # ffmpeg restarts per camera since the hub started, carried across connections: a
        # restart of a v2 edge's camera ends its request and the next one has a new segmenter
        self.restart_counts: dict[str, int] = {}
        self.new_names = NewNameLimiter(config.new_cameras_per_source, config.new_camera_window)
        # per-camera tokens of the admin panel, and the one each live stream was admitted with
        self.tokens = TokenCache()
        self._token_reload_asked = -TOKEN_RELOAD_SECONDS
        # the web app's marks (a viewer, a command), waited on instead of polled
        self.marks = MarkWatcher(self.storage.live_root(), control_dir(self.storage.root))
        self.stream_tokens: dict[str, str] = {}
        # motion of cameras without our edge, from their segments' keyframes
        self.segment_motion = SegmentMotion(self.catalog, self.executor, config.hub_motion,
                                            on_stored=lambda: self.health.news("motion"))
        self.gallery = faces.GalleryCache()  # the people the hub names sightings with

    # -- life cycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Start everything, serve until asked to stop, then stop cleanly."""
        self._install_signal_handlers()
        self.storage.lock()
        try:
            await self._prepare()
            await self._serve()
            await self.stopping.wait()
        finally:
            await self.shutdown()

    async def _prepare(self) -> None:
        loop = asyncio.get_running_loop()
        logger.info("hub %s: catalog %s, storage %s", self.config.hub_id,
                    db.redacted(self.config.db_url), self.storage.root)
        log_ffmpeg_in_background(logger)
        await loop.run_in_executor(self.executor, db.upgrade, self.engine)
        # before recovery touches a row: the wrong folder would have every recording marked missing
        await loop.run_in_executor(self.executor, check_storage_identity, self.catalog,
                                   self.storage, f"{self.config.listen_host}:{self.config.listen_port}")
        self.report = await loop.run_in_executor(self.executor, reconcile, self.catalog, self.storage)
        crashed = await loop.run_in_executor(self.executor, outages.open_outages_after_crash,
                                             self.catalog, utcnow())
        if crashed:
            logger.warning("the last hub stopped unexpectedly while recording %s", ", ".join(crashed))
        self.open_outages = await loop.run_in_executor(self.executor, outages.open_outages,
                                                       self.catalog)
        if not self.config.require_approval:
            await loop.run_in_executor(self.executor, control.approve_pending, self.catalog)
        self.catalog.on_new_camera = self._on_new_camera
        self.alerts.start()
        self.tokens.replace(await loop.run_in_executor(self.executor, tokens.load_active,
                                                       self.catalog.engine))
        if not self.config.ingest_token and not any(c.token for c in self.config.cameras):
            logger.warning("no ingest token is configured: any host that reaches the port can "
                           "push as a camera that has no token of its own")

    async def _serve(self) -> None:
        await self._listen()
        self.marks.start()
        await self.sync_pulls()
        self.control_task = asyncio.create_task(self._control_loop(), name="control")
        self.segment_motion.start()
        self.live_task = asyncio.create_task(self._live_loop(), name="live")
        self.health.start()
        addresses = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}{tls}"
                              for server, tls in self._listeners() for s in server.sockets)
        logger.info("hub listening on %s (segments of %g s)", addresses, self.config.segment_seconds)
        if self.own_process:
            settle_garbage_collector()
        self.ready.set()
        self.notifier.ready(self._recording_status())
        if self.notifier.watchdog_seconds:
            self.watchdog_task = asyncio.create_task(self._watchdog_loop(), name="watchdog")

    async def _watchdog_loop(self) -> None:
        # The pings come from the event loop that relays every pushed stream and supervises
        # every ffmpeg: if it hangs, they stop and systemd restarts the hub (WatchdogSec=).
        interval = self.notifier.watchdog_seconds / 2  # type: ignore[operator]
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _recording_status(self) -> str:
        recording = sum(1 for s in self.segmenters().values() if s.state is State.RUNNING)
        return f"recording {recording} camera{'' if recording == 1 else 's'}"

    def _publish_systemd_status(self) -> None:
        line = self._recording_status()
        if line != self._status_line:
            self._status_line = line
            self.notifier.status(line)

    async def _listen(self) -> None:
        """Open the ingest port: plain, TLS only, or plain plus a TLS port (tls_listen)."""
        config = self.config
        context = server_context(config.tls_cert, config.tls_key) \
            if config.tls_cert is not None and config.tls_key is not None else None
        plain_tls = context if config.tls_listen is None else None

        async def listen(host: str, port: int, tls: ssl.SSLContext | None) -> asyncio.Server:
            return await start_server(self, host, port, config.stall_timeout,
                                      self._track_connection, ingest_limits(config), tls=tls)

        self.server = await listen(config.listen_host, config.listen_port, plain_tls)
        self.server_tls = plain_tls is not None
        if context is not None and config.tls_listen is not None:
            self.tls_server = await listen(*config.tls_listen, context)

    def _listeners(self) -> list[tuple[asyncio.Server, str]]:
        servers = [(self.server, " (TLS)" if self.server_tls else "")] if self.server else []
        return servers + ([(self.tls_server, " (TLS)")] if self.tls_server else [])

    def request_stop(self) -> None:
        """Ask the hub to stop (safe to call from a signal handler)."""
        if not self.stopping.is_set():
            self.notifier.stopping("stopping: finishing the open segments")
        self.stopping.set()

    async def shutdown(self) -> None:
        """Stop accepting, finish every open segment, and release the storage."""
        self.stopping.set()
        for server, _tls in self._listeners():
            server.close()
        self.health.halt()
        for name in self.pushed:
            self.closing[name] = "hub_stopped"
        for task in (self.control_task, self.live_task, self.watchdog_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.marks.close()
        # Cancelling a connection ends its relay; its handler then closes ffmpeg's input,
        # so the open segment is finished and cataloged before the task returns.
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        await asyncio.gather(*(s.finish() for s in self.pushed.values()), return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self.pulled.values()), return_exceptions=True)
        await asyncio.gather(*(self._stop_tap(name) for name in list(self.taps)),
                             return_exceptions=True)
        for name in list(self.pulled):
            self._spawn_event(self._went_offline(name, "hub_stopped", "the hub stopped", ""))
        await asyncio.gather(*self.event_tasks, return_exceptions=True)
        if self.ready.is_set():
            await self.health.stop()
        # its last events are stored on the catalog thread: before that thread ends
        await asyncio.get_running_loop().run_in_executor(None, self.segment_motion.stop)
        self.alerts.stop()
        self.executor.shutdown(wait=True)
        self.engine.dispose()
        self.storage.unlock()
        logger.info("hub stopped")

    def _install_signal_handlers(self) -> None:
        # Only the main thread can take signals; the hub always runs there (python -m
        # recorder), and a SIGTERM that could not stop it cleanly must not pass silently.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)

    def _track_connection(self, task: asyncio.Task[None]) -> None:
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)

    # -- ingest handler (see ingest.IngestHandler) ---------------------------------------------

    def precheck(self, request: IngestRequest) -> None:
        """Reject a request early on what needs no database: token, state, conflicts, limits."""
        name = request.camera
        camera = self.config.camera(name)
        # before the token: no token, however right, lets footage be forged under a pulled camera
        if (camera is not None and camera.is_pull) or name in self.pulled:
            raise IngestRejected(409, f"camera {name} is pulled by the hub, not pushed")
        self._check_token(request)
        if request.protocol.backfill:  # not the live slot: its own rules (ingest/backfill.py)
            backfill.precheck(self.config, request, self.backfills, self._stream_count(),
                              self.stopping.is_set())
            return
        if self.stopping.is_set():
            raise IngestRejected(503, "the hub is shutting down")
        if camera is not None and not camera.enabled:
            raise IngestRejected(423, f"camera {name} is disabled")
        if name in self.pushed:
            raise IngestRejected(409, f"camera {name} is already streaming from another connection")
        if len(self.pushed) + len(self.pulled) >= self.config.max_streams:
            raise IngestRejected(503, "the hub is at its stream limit")

    async def admit(self, request: IngestRequest) -> StreamSink:
        """Claim a camera for a new edge connection, or raise IngestRejected."""
        await self._check_pushable(request)
        self.precheck(request)  # again: the state may have changed while the body started
        if request.protocol.backfill:
            return await self._admit_backfill(request)
        name = request.camera
        catalog_token = self.tokens.match(name, request.token)
        camera = self.config.camera(name)
        location = camera.location if camera and camera.location else request.location
        segmenter = self._new_segmenter(name, location, "push", peer=request.peer)
        segmenter.machine.restarts = self.restart_counts.get(name, 0)
        segmenter.anchor = self._anchor(request)
        segmenter.direct_expected = request.protocol.direct
        self.pushed[name] = segmenter  # claimed before the await: a racing twin gets 409
        try:
            # a camera an admin made a token for counts as known, whatever unknown_cameras says
            await self._check_allowed(name, location,
                                      configured=camera is not None or catalog_token is not None)
        except IngestRejected:
            del self.pushed[name]
            raise
        if catalog_token is not None:
            self.stream_tokens[name] = catalog_token
        task = asyncio.current_task()
        if task is not None:
            self.push_tasks[name] = task
        self._track_progress(segmenter, request)
        segmenter.start()
        logger.info("%s: edge %s connected (location %r)", name, request.peer, location)
        self._spawn_event(self._came_online(name, request.peer, request.protocol))
        if request.protocol.spool_dropped > 0:
            self._spawn_event(self._spool_dropped(name, request.protocol.spool_dropped))
        return segmenter

    async def _admit_backfill(self, request: IngestRequest) -> StreamSink:
        name = request.camera
        camera = self.config.camera(name)
        location = camera.location if camera and camera.location else request.location
        segmenter = Segmenter(camera=name, location=location, kind="backfill",
                              incoming_dir=self.storage.incoming_dir(name),
                              segment_seconds=self.config.segment_seconds_for(name),
                              policy=self.policy, catalog=self.catalog,
                              catalog_executor=self.executor, peer=request.peer,
                              anchor=self._anchor(request))
        self.backfills[name] = segmenter  # claimed before the await: a second one gets 409
        try:
            verdict = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.catalog.camera_verdict, name)
            backfill.check_verdict(self.config, name, verdict)
        except IngestRejected:
            del self.backfills[name]
            raise
        self._track_progress(segmenter, request)
        segmenter.start()
        logger.info("%s: %s started", name, backfill.describe(request))
        return segmenter

    def _track_progress(self, segmenter: Segmenter, request: IngestRequest) -> None:
        """Advance a version-2 request's acks as its segments become durable."""
        if not request.protocol.acks or request.epoch is None:
            return
        progress = DurableProgress()
        # the request's PTS 0; the run's own anchor may sit elsewhere in a shifted timeline
        origin = dt.datetime.fromtimestamp(request.epoch, dt.timezone.utc)
        self.progress[segmenter] = progress

        def on_segment(segment: FinishedSegment) -> None:
            if segment.run is None or segment.last_pts is None:
                return  # unknown end: the next segment's ack covers this one
            pts = segment.run.seconds_after(origin, segment.last_pts)
            if pts is not None:
                progress.advance(pts + TICK)  # every frame up to and with the last one

        def on_state(_old: State, new: State, reason: str) -> None:
            # ffmpeg died or was restarted: bytes in flight are gone, so acks must stop here
            if new in (State.BACKOFF, State.FAILED):
                # a restart someone asked for ends ffmpeg with our SIGTERM: its exit status
                # (255) would tell the edge's user nothing
                why = "on request" if segmenter.restart_requested else reason or new.value
                progress.freeze(f"recorder restarted ({why})")

        segmenter.on_segment.append(on_segment)
        # acks would vouch for frames never recorded: none for this request from now on
        segmenter.on_skip.append(lambda what: progress.freeze(what, end_request=False))
        segmenter.machine.listeners.append(on_state)

    def progress_of(self, sink: StreamSink) -> DurableProgress:
        """How far a version-2 request's footage is durable (a frozen one if not tracked)."""
        progress = self.progress.get(sink)
        if progress is None:
            progress = DurableProgress()
            progress.freeze("not tracked")
        return progress

    def _stream_count(self) -> int:
        return len(self.pushed) + len(self.pulled) + len(self.backfills)

    async def _check_pushable(self, request: IngestRequest) -> None:
        """Refuse a pull camera of the catalog (409) and new names beyond the rate limit (429)."""
        name = request.camera
        if self.config.camera(name) is not None:
            return
        loop = asyncio.get_running_loop()
        standing = await loop.run_in_executor(self.executor, catalog_standing, self.catalog, name)
        if standing == "pull":
            raise IngestRejected(409, f"camera {name} is pulled by the hub, not pushed")
        source = source_of((request.peer.rpartition(":")[0].strip("[]"),))
        # An edge that proved the shared token is the owner's: an edge with many cameras comes
        # up at once. Without a token anyone who reaches the port could invent names.
        trusted = self.config.ingest_token is not None or \
            self.tokens.match(name, request.token) is not None
        if standing == "new" and self.config.allow_new_cameras and not trusted and \
                not request.protocol.backfill and not self.new_names.allow(source, name):
            raise IngestRejected(429, f"too many new camera names from {source} (at most "
                                      f"{self.config.new_cameras_per_source} per "
                                      f"{self.config.new_camera_window:g} s); retry later")

    def release(self, camera: str, sink: StreamSink, ending: StreamEnding) -> None:
        """Forget the connection that held a camera, and record why it went offline."""
        self.progress.pop(sink, None)
        if self.backfills.get(camera) is sink:
            del self.backfills[camera]
            logger.info("%s: backfill from %s ended (%s)", camera, getattr(sink, "peer", "?"),
                        ending.reason)
            return
        if self.pushed.get(camera) is not sink:
            return
        del self.pushed[camera]
        self.push_tasks.pop(camera, None)
        self.stream_tokens.pop(camera, None)
        if isinstance(sink, Segmenter):
            self.restart_counts[camera] = sink.machine.restarts + (ending.reason == "restarted")
        reason = ending.reason
        if reason == "closed_by_hub":
            reason = self.closing.pop(camera, "disconnected")
        detail = ending.detail or _QUIET_DETAILS.get(reason, "")
        if isinstance(sink, Segmenter):
            self._spawn_event(self._went_offline(camera, reason, detail, sink.peer,
                                                 sink.stats.last_segment_end))

    # -- camera events: outages and alerts (docs/design/health.md) ---------------------------------

    def raise_alert(self, kind: str, camera: str | None, details: dict[str, object]) -> None:
        """Hand an alert to the alert center (never blocks); it names the hub that raised it."""
        details = {**details, "hub": self.config.hub_id}
        self.alerts.notify(AlertEvent(kind=kind, camera=camera, at=utcnow(), details=details))

    def _spawn_event(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self.event_tasks.add(task)
        task.add_done_callback(self.event_tasks.discard)

    async def _went_offline(self, camera: str, reason: str, detail: str, peer: str,
                            last_segment_end: dt.datetime | None = None) -> None:
        if camera in self.open_outages:
            return  # already offline: the first cause is the one that counts
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(self.executor, outages.open_outage, self.catalog,
                                              camera, reason, detail, utcnow())
        except Exception:  # the catalog may be briefly unavailable; the alert still goes out
            logger.exception("%s: cannot record the outage", camera)
            info = OutageInfo(camera, utcnow(), reason, detail)
        if info is None:
            return
        self.open_outages[camera] = info
        logger.warning("%s: offline (%s) %s", camera, info.reason, detail)
        if info.reason not in QUIET_REASONS:
            self.raise_alert("offline", camera, {
                "reason": info.reason, "peer": peer, "since": info.started_at.isoformat(),
                "last_segment_end": last_segment_end.isoformat() if last_segment_end else None,
                "detail": detail})

    async def _came_online(self, camera: str, peer: str,
                           protocol: ProtocolFields | None = None) -> None:
        if camera not in self.open_outages:
            return
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(self.executor, outages.close_outage, self.catalog,
                                          camera, utcnow())
        opened = self.open_outages.pop(camera, None)
        info = info or opened
        if info is None:
            return
        logger.info("%s: back online after %.0f s (%s)", camera, info.seconds, info.reason)
        if info.reason not in QUIET_REASONS or camera in self.health.missed_after_restart:
            self.health.missed_after_restart.discard(camera)
            # an edge with a spool uploads the gap (backfill); anything else lost it
            spool = protocol is not None and protocol.spool
            self.raise_alert("online", camera, {
                "offline_since": info.started_at.isoformat(),
                "outage_seconds": round(info.seconds, 1), "reason": info.reason, "peer": peer,
                "gap": "backfill" if spool else "lost",
                "dropped_seconds": round(protocol.spool_dropped, 1) if protocol else 0.0})

    async def _spool_dropped(self, camera: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self.executor, self.catalog.add_dropped_seconds,
                                               camera, seconds)
        except Exception:  # accounting only: recording goes on
            logger.exception("%s: cannot record dropped spool footage", camera)
            return
        logger.warning("%s: the edge's spool dropped %.1f s of footage%s", camera, seconds,
                       "" if found else " (no outage to add it to)")

    def _on_new_camera(self, name: str, location: str, kind: str, approval: str) -> None:
        # runs on the catalog thread; notify() only queues
        segmenter = self.pushed.get(name) or self.pulled.get(name)
        self.raise_alert("new_camera", name, {"location": location, "camera_kind": kind,
                                              "approval": approval,
                                              "peer": segmenter.peer if segmenter else ""})

    def _on_state(self, segmenter: Segmenter, old: State, new: State) -> None:
        name = segmenter.camera
        if new is State.FAILED:
            tail = "\n".join(segmenter.stderr.tail(5))
            self.raise_alert("failing", name, {
                "failures": segmenter.machine.consecutive_failures, "last_error": tail,
                "retry_in_seconds": segmenter.machine.retry_in})
            self._spawn_event(self._went_offline(name, "failing", tail, segmenter.peer,
                                                 segmenter.stats.last_segment_end))
        elif (segmenter.kind == "pull" and new is State.BACKOFF and not segmenter.restart_requested
              and not self.stopping.is_set()):
            detail = "\n".join(segmenter.stderr.tail(3)) or "ffmpeg exited"
            self._spawn_event(self._went_offline(name, "connection_lost", detail, segmenter.peer,
                                                 segmenter.stats.last_segment_end))

    def _on_segment(self, segmenter: Segmenter) -> None:
        if segmenter.camera in self.open_outages:
            self._spawn_event(self._came_online(segmenter.camera, segmenter.peer))

    def segments_of(self, sink: StreamSink) -> int:
        """Count the segments a connection produced."""
        return sink.stats.segments if isinstance(sink, Segmenter) else 0

    def bytes_of(self, sink: StreamSink) -> int:
        """Count the bytes a connection delivered."""
        return sink.stats.bytes_in if isinstance(sink, Segmenter) else 0

    def _check_token(self, request: IngestRequest) -> None:
        """Accept the camera's config token (else the shared one) or one of its catalog tokens."""
        self._check_camera_token(request.camera, request.token)

    def _check_camera_token(self, name: str, token: str | None) -> None:
        camera = self.config.camera(name)
        expected = (camera.token if camera and camera.token else None) or self.config.ingest_token
        if self.tokens.match(name, token) is not None:
            return
        if expected is None and not self.tokens.has_tokens(name):
            if token is not None:  # maybe one just made (the unknown-camera policy lets it in)
                self._reload_tokens_soon()
            return  # nothing configured for this camera: the port is open (warned at start)
        if expected is None or not token_matches(token, expected):
            if token is not None:
                self._reload_tokens_soon()
            what = "no" if token is None else "a wrong"
            raise IngestRejected(401, f"{what} bearer token for camera {name}")

    # -- motion events from edges (recorder/ingest/events.py, docs/design/motion.md) ------------

    def check_motion_access(self, camera: str, token: str | None) -> None:
        """Apply the stream's rules to a motion request: pulled cameras (409), then the token."""
        configured = self.config.camera(camera)
        if (configured is not None and configured.is_pull) or camera in self.pulled:
            raise IngestRejected(409, f"camera {camera} is pulled by the hub, not pushed")
        self._check_camera_token(camera, token)
        if self.stopping.is_set():
            raise IngestRejected(503, "the hub is shutting down")

    async def record_motion(self, report: MotionReport) -> dict[str, object]:
        """Store an event (row and snapshot durable) and return the camera's motion settings."""
        self.segment_motion.edge_spoke(report.camera)
        fields = motion.EventFields(report.camera, report.event_key, report.start, report.end,
                                    report.score, report.box, report.snapshot)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self.executor, self._store_motion, fields)
        self.health.news("motion")
        return answer

    async def motion_settings(self, camera: str) -> dict[str, object]:
        """Return a camera's motion settings for its edge (404 unknown, 409 another hub's)."""
        self.segment_motion.edge_spoke(camera)
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self.executor, motion.camera_motion, self.catalog,
                                           camera)
        return self._motion_answer(camera, found)

    def _store_motion(self, fields: motion.EventFields) -> dict[str, object]:
        found = motion.camera_motion(self.catalog, fields.camera)
        answer = self._motion_answer(fields.camera, found)
        assert found is not None
        _check_recorded(fields.camera, found.camera_enabled, found.approval)
        if not motion.store_event(self.catalog, fields, found.camera_id):
            raise IngestRejected(409, f"event_key {fields.event_key} belongs to another camera")
        return answer

    def _motion_answer(self, camera: str, found: motion.CameraMotion | None) -> dict[str, object]:
        self._check_ours(camera, found, "motion events are")
        assert found is not None
        return settings_json(found.enabled, found.sensitivity, found.mask, found.updated_at)

    def _check_ours(self, camera: str, found: motion.CameraMotion | faces.CameraFaces | None,
                    what: str) -> None:
        """Refuse a camera the catalog does not know (404) or another hub records (409)."""
        if found is None:
            raise IngestRejected(404, f"unknown camera {camera}: {what} taken only for a camera "
                                      "the hub records")
        if found.hub_id != self.config.hub_id:
            raise IngestRejected(409, f"camera {camera} is recorded by hub {found.hub_id}")

    # -- face sightings from edges (recorder/ingest/faces.py, docs/design/faces.md) ---------------

    async def record_sighting(self, report: SightingReport) -> dict[str, object]:
        """Store a sighting (crop and row durable), named by the hub's own gallery."""
        fields = faces.SightingFields(report.camera, report.sighting_key, report.start,
                                      report.end, report.box, report.size, report.score,
                                      report.embedding, report.crop)
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self.executor, self._store_sighting, fields)
        self.health.news("face")
        return answer

    async def face_gallery(self, camera: str, if_none_match: str | None) -> GalleryReply:
        """Return a camera's gallery for its edge, or only its ETag if the edge has it (304)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._face_gallery, camera,
                                          if_none_match)

    def _store_sighting(self, fields: faces.SightingFields) -> dict[str, object]:
        found = self._faces_camera(fields.camera)
        _check_recorded(fields.camera, found.camera_enabled, found.approval)
        gallery = self.gallery.get(self.catalog)
        result = faces.store_sighting(self.catalog, fields, found.camera_id, gallery)
        if result.outcome is faces.Stored.OTHER_CAMERA:
            raise IngestRejected(409, f"sighting_key {fields.sighting_key} belongs to another "
                                      "camera")
        faces.note_faces_seen(self.catalog, found)
        person = None if result.person is None else \
            {"id": result.person[0], "name": result.person[1]}
        return {"person": person, "gallery": gallery.state.etag(found.faces_enabled)}

    def _face_gallery(self, camera: str, if_none_match: str | None) -> GalleryReply:
        found = self._faces_camera(camera)
        gallery = self.gallery.get(self.catalog)
        etag = gallery.state.etag(found.faces_enabled)
        faces.note_faces_seen(self.catalog, found)
        if etag_matches(if_none_match, etag):
            return GalleryReply(etag, None)
        return GalleryReply(etag, gallery.answer(camera, found.faces_enabled))

    def _faces_camera(self, camera: str) -> faces.CameraFaces:
        """The camera of a faces request: ours, or refused (404, 409)."""
        found = faces.camera_faces(self.catalog, camera)
        self._check_ours(camera, found, "face sightings are")
        assert found is not None
        return found

    def _take_tokens(self, active: dict[str, tuple[str, ...]]) -> None:
        self.tokens.replace(active)
        for name, token_hash in list(self.stream_tokens.items()):
            task = self.push_tasks.get(name)
            if task is not None and not self.tokens.is_active(name, token_hash):
                logger.warning("%s: its ingest token was revoked: closing the stream", name)
                self.stream_tokens.pop(name, None)
                self.closing[name] = "disconnected"
                task.cancel()

    def _reload_tokens_soon(self) -> None:
        # A token the cache does not know may be one the admin panel just made: the control
        # loop reads the catalog now (at most once a TOKEN_RELOAD_SECONDS, whatever a peer
        # sends), and the edge's retry is let in.
        now = time.monotonic()
        if now - self._token_reload_asked >= TOKEN_RELOAD_SECONDS:
            self._token_reload_asked = now
            self.marks.control.set()

    async def _check_allowed(self, name: str, location: str, configured: bool) -> None:
        loop = asyncio.get_running_loop()
        verdict = await loop.run_in_executor(self.executor, self.catalog.admission, name, location,
                                             configured, self.config.allow_new_cameras,
                                             self.config.require_approval)
        backfill.check_hub(name, verdict)
        if verdict == "unknown":
            raise IngestRejected(404, f"unknown camera {name} (unknown_cameras = \"refuse\": "
                                      "add it to the config file or make it a token)")
        if verdict == "disabled":
            raise IngestRejected(423, f"camera {name} is disabled")
        if verdict == "rejected":
            raise IngestRejected(403, f"camera {name} was rejected by an admin")
        if verdict == "pending" and self.config.require_approval:
            raise IngestRejected(403, f"camera {name} is awaiting an admin's approval")

    def _anchor(self, request: IngestRequest) -> Anchor | None:
        if request.epoch is None:
            return None
        wall = dt.datetime.fromtimestamp(request.epoch, dt.timezone.utc)
        return Anchor(wall=wall, pts=0.0, exact=True)

    # -- segmenters ---------------------------------------------------------------------------

    def _new_segmenter(self, name: str, location: str, kind: str, peer: str = "",
                       url: str | None = None) -> Segmenter:
        segmenter = Segmenter(camera=name, location=location, kind=kind,
                              incoming_dir=self.storage.incoming_dir(name),
                              segment_seconds=self.config.segment_seconds_for(name),
                              policy=self.policy, catalog=self.catalog,
                              catalog_executor=self.executor, url=url, peer=peer,
                              pin_url=self._pin_url if kind == "pull" else None)
        segmenter.machine.listeners.append(
            lambda old, new, _reason: self._on_state(segmenter, old, new))
        segmenter.on_segment.append(lambda _segment: self._on_segment(segmenter))
        segmenter.on_segment.append(lambda segment: self.segment_motion.on_segment(name, segment))
        return segmenter

    def _start_pull(self, name: str, location: str, url: str) -> None:
        segmenter = self._new_segmenter(name, location, "pull", peer=redact(url), url=url)
        self.pulled[name] = segmenter
        segmenter.start()
        logger.info("%s: pulling %s", name, redact(url))

    def _pin_url(self, url: str, attempt: int = 0) -> str:
        """A pulled camera's URL with its host resolved and checked now (camera_urls)."""
        return camera_urls.pinned_url(url, self.config.allow_local_camera_urls, attempt)

    async def _pull_allowed(self, name: str, url: str) -> bool:
        """Tell whether ``url`` may be pulled (loopback and link-local need the config's yes)."""
        check = functools.partial(camera_urls.check_camera_url, url,
                                  self.config.allow_local_camera_urls)
        try:  # a name's resolution may block: not on the event loop
            await asyncio.get_running_loop().run_in_executor(None, check)
        except camera_urls.LocalCameraURL as exc:
            if self._refused_pulls.get(name) != url:  # say it once per URL, not every reload
                logger.error("%s: not pulled: %s", name, exc)
            self._refused_pulls[name] = url
            self._refusals[name] = f"not pulled: {exc}"
            return False
        self._refused_pulls.pop(name, None)
        self._refusals.pop(name, None)
        return True

    async def sync_pulls(self) -> None:
        """Pull exactly the enabled cameras of the config file and of the database."""
        loop = asyncio.get_running_loop()
        from_db = await loop.run_in_executor(self.executor, control.database_pull_cameras,
                                             self.catalog)
        disabled = await loop.run_in_executor(self.executor, control.disabled_cameras, self.catalog)
        elsewhere = await loop.run_in_executor(self.executor, control.other_hubs_cameras,
                                               self.catalog)
        wanted = {c.name: control.PullCamera(c.name, c.location, c.url or "")
                  for c in self.config.cameras if c.is_pull and c.enabled}
        for camera in from_db:
            wanted.setdefault(camera.name, camera)  # the config file wins
        wanted = {name: c for name, c in wanted.items() if name not in disabled}
        for name in [n for n in wanted if n in elsewhere]:  # a config-file camera of our own
            del wanted[name]
            if self._refusals.get(name) is None:
                logger.error("%s: not pulled: hub %s of the catalog records a camera of that "
                             "name; rename one of them", name, elsewhere[name])
            self._refusals[name] = f"not pulled: hub {elsewhere[name]} records this camera"
        for name in [n for n in self._refusals if n not in wanted and n not in elsewhere]:
            del self._refusals[name]
            self._refused_pulls.pop(name, None)
        for name, segmenter in list(self.pulled.items()):
            if name not in wanted or wanted[name].url != segmenter.url:
                del self.pulled[name]
                await segmenter.stop()
                logger.info("%s: no longer pulled", name)
        for name, camera in wanted.items():
            if name not in self.pulled and name not in self.pushed:
                if await self._pull_allowed(name, camera.url):
                    self._start_pull(name, camera.location, camera.url)

    def segmenters(self) -> dict[str, Segmenter]:
        """Every live segmenter by camera name."""
        return {**self.pulled, **self.pushed}

    # -- control channel (docs/design/control.md) -----------------------------------------------

    async def _control_loop(self) -> None:
        # Status rows every STATUS_SECONDS; the catalog's commands and tokens when the web app
        # nudges (recorder/supervise/marks.py), an unknown token asks, or the safety poll comes round.
        loop = asyncio.get_running_loop()
        next_poll = next_status = loop.time()
        nudged = False
        while True:
            try:
                now = loop.time()
                if nudged or now >= next_poll:
                    # looked up each time: inotify may fail while the hub runs (marks.py)
                    next_poll = now + (CONTROL_SAFETY_SECONDS if self.marks.active
                                       else CONTROL_POLL_SECONDS)
                    await self.read_control()
                if now >= next_status:
                    next_status = now + STATUS_SECONDS
                    await loop.run_in_executor(self.executor, control.publish_status,
                                               self.catalog, self.status_samples(), self.meter)
                    self._publish_systemd_status()
            except asyncio.CancelledError:
                raise
            except Exception:  # the control channel must never take recording down
                logger.exception("control channel error")
            nudged = await marks.wait_for(self.marks.control,
                                          min(next_poll, next_status) - loop.time())

    async def read_control(self) -> None:
        """Reload the catalog's tokens and carry out this hub's pending commands."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self.executor, control.poll, self.catalog)
        self._take_tokens(found.tokens)
        for command in found.commands:
            result = await self.execute(command.camera, command.action)
            logger.info("command %s %s by %s: %s", command.action, command.camera,
                        command.requested_by or "?", result)
            await loop.run_in_executor(self.executor, control.finish_command, self.catalog,
                                       command.id, result)

    async def _live_loop(self) -> None:
        # Its own loop: a viewer's mark starts the tap at once (inotify; without it, within
        # LIVE_POLL_SECONDS: the first picture waits for it), and a tap that is slow to stop
        # delays no status. While a tap runs, its mark's age and its life are checked often.
        while True:
            try:
                await self.sync_live()
            except asyncio.CancelledError:
                raise
            except Exception:  # the live view must never take recording down
                logger.exception("live view error")
            if not self.marks.active:
                await asyncio.sleep(LIVE_POLL_SECONDS)
            else:
                await marks.wait_for(self.marks.live,
                                     LIVE_CHECK_SECONDS if self.taps else LIVE_SAFETY_SECONDS)

    async def sync_live(self) -> None:
        """Run a live tap for exactly the recording cameras someone is watching."""
        segmenters = self.segmenters() if self.config.live_view else {}
        watched = live.watched(self.storage.live_root()) if segmenters else set()
        for name, segmenter in segmenters.items():
            tap = self.taps.get(name)
            # a tap fed by an earlier request of this camera (its edge reconnected) is spent
            if tap is not None and (name not in watched or not tap.alive
                                    or self._tapped.get(name) is not segmenter):
                await self._stop_tap(name)
                tap = None
            if name in watched and tap is None:
                await self._start_tap(name, segmenter)
        for name in [n for n in self.taps if n not in segmenters]:
            await self._stop_tap(name)  # the camera stopped recording

    async def _start_tap(self, name: str, segmenter: Segmenter) -> None:
        """Start a camera's live tap, fed as its recording is (docs/design/live.md)."""
        url = await self._tap_url(name, segmenter)
        if segmenter.kind == "pull" and url is None:
            return
        tap = live.LiveTap(name, self.storage.live_dir(name), url=url,
                           audio=ffmpeg.live_audio_mode(segmenter.audio_codec,
                                                        pulled=segmenter.kind == "pull"))
        await tap.start()
        self.taps[name], self._tapped[name] = tap, segmenter
        if segmenter.direct_expected:  # version 3: the tap reads what ffmpeg writes
            feed = live.DirectFeed(segmenter, tap)
            feed.start()
            self._direct_feeds[name] = feed
        elif segmenter.kind == "push":  # from the last keyframe on, not the next one
            tap.feed(segmenter.recent.data())
            segmenter.tap = tap

    async def _stop_tap(self, name: str) -> None:
        tap, segmenter = self.taps.pop(name), self._tapped.pop(name, None)
        if segmenter is not None:
            segmenter.tap = None
        feed = self._direct_feeds.pop(name, None)
        if feed is not None:
            await feed.stop()
        await tap.stop()

    async def _tap_url(self, name: str, segmenter: Segmenter) -> str | None:
        """The URL a pulled camera's live tap opens, resolved and checked now (None: none)."""
        if segmenter.kind != "pull" or segmenter.url is None:
            return None
        try:  # a name's resolution may block: not on the event loop
            url = await asyncio.get_running_loop().run_in_executor(
                None, self._pin_url, segmenter.url)
        except ValueError as exc:
            if name not in self._tap_refused:  # once, not at every look at the marks
                logger.error("%s: no live view: %s", name, exc)
            self._tap_refused.add(name)
            return None
        self._tap_refused.discard(name)
        return url

    async def execute(self, camera: str, action: str) -> str:
        """Carry out one control action on a camera; return a short outcome."""
        loop = asyncio.get_running_loop()
        if action == "reload":
            await self.sync_pulls()
            return "ok: cameras reloaded"
        segmenter = self.segmenters().get(camera)
        if action == "restart":
            if segmenter is None:
                return "not streaming"
            await segmenter.restart()
            return "ok: ffmpeg restarted"
        if action == "disconnect":
            task = self.push_tasks.get(camera)
            if task is None:
                return "no edge connected"
            self.closing[camera] = "disconnected"
            task.cancel()
            return "ok: edge disconnected"
        if action in ("enable", "disable"):
            found = await loop.run_in_executor(self.executor, control.set_enabled, self.catalog,
                                               camera, action == "enable")
            if not found:
                return "unknown camera"
            if action == "disable" and camera in self.push_tasks:
                self.closing[camera] = "disabled"
                self.push_tasks[camera].cancel()
            elif action == "disable" and camera in self.pulled:
                self._spawn_event(self._went_offline(camera, "disabled", _QUIET_DETAILS["disabled"],
                                                     self.pulled[camera].peer))
            await self.sync_pulls()
            return f"ok: {action}d"
        return f"unknown action {action!r}"

    def status_samples(self) -> list[control.StatusSample]:
        """The live status of every segmenter, for the control channel."""
        samples = []
        for name, segmenter in self.segmenters().items():
            state = segmenter.state
            online = state in (State.STARTING, State.RUNNING)
            failing = state in (State.BACKOFF, State.FAILED)
            samples.append(control.StatusSample(
                camera=name, kind=segmenter.kind, state=state.value, online=online,
                pid=segmenter.pid, peer=segmenter.peer, connected_since=segmenter.created_at,
                bytes_in=segmenter.stats.bytes_in if segmenter.kind == "push"
                else segmenter.stats.bytes_out,
                frames=segmenter.stats.frames, bytes_written=segmenter.stats.bytes_out,
                restarts=segmenter.machine.restarts,
                last_segment_end=segmenter.stats.last_segment_end,
                last_error="\n".join(segmenter.stderr.tail(5)) if failing else ""))
        for name, why in self._refusals.items():
            if name not in self.pulled:  # the admin page says why, not an old ffmpeg error
                samples.append(control.StatusSample(
                    camera=name, kind="pull", state=State.FAILED.value, online=False, pid=None,
                    peer="", connected_since=None, bytes_in=0, frames=0, bytes_written=0,
                    restarts=0, last_segment_end=None, last_error=why))
        return samples


def _check_recorded(camera: str, enabled: bool, approval: str) -> None:
    """As for its stream: no events of a disabled (423) or unapproved (403) camera."""
    if not enabled:
        raise IngestRejected(423, f"camera {camera} is disabled")
    if approval != "approved":
        raise IngestRejected(403, f"camera {camera} is {approval} (an admin's approval)")


def catalog_standing(catalog: Catalog, name: str) -> str:
    """Say what the catalog knows of a camera name: 'pull', 'known' or 'new' (catalog thread)."""
    with catalog.session() as session:
        row = session.execute(select(Camera.url).where(Camera.name == name)).first()
    if row is None:
        return "new"
    return "pull" if row.url is not None else "known"


def ingest_limits(config: HubConfig) -> IngestLimits:
    """The ingest server's limits from the hub's config."""
    return IngestLimits(head_timeout=config.head_timeout, max_connections=config.max_connections,
                        max_connections_per_source=config.max_connections_per_source,
                        fd_reserve=config.fd_reserve, min_video_bytes=config.min_video_bytes)
