"""What keeps the ingest port from being abused: connection caps, a descriptor reserve,
request deadlines, a floor of real video, new-name rate limits and quiet logs.

See docs/design/protocol.md, "Limits". Everything here runs on the hub's event loop
(``NewNameLimiter`` too); nothing blocks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import ipaddress
import logging
import os
import resource
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from recorder.errors import IngestRejected

logger = logging.getLogger(__name__)

TS_PACKET = 188
SYNC_BYTE = 0x47
NULL_PID = 0x1FFF
FIRST_ES_PID = 0x20  # PIDs below carry tables (PAT, CAT, ...), never video
FD_SCAN_SECONDS = 0.1  # how stale the count of open descriptors may get
FD_DIR = "/proc/self/fd"
CLOCK_SLACK = 0.01  # seconds: asyncio's timers may fire this much before their deadline
MAX_TRACKED_SOURCES = 4096  # beyond this, sources share one bucket: memory stays bounded
QUIET_WINDOW = 60.0  # a burst of log-worthy events is summarised at least this often
BURST_GAP = 5.0  # seconds without such an event that end a burst
LINES_PER_SOURCE = 5  # full log lines per source address and outcome in a burst ...
LINES_PER_BURST = 50  # ... and in all: a sustained flood logs ~50 lines a minute
ACCEPT_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclasses.dataclass(frozen=True)
class IngestLimits:
    """The ingest port's limits (config keys of the same names, docs/design/protocol.md)."""

    head_timeout: float = 10.0  # the whole request head must arrive within this
    max_connections: int = 1024  # open ingest connections in total
    max_connections_per_source: int = 32  # open ingest connections per source address
    fd_reserve: int = 256  # descriptors kept free for recording (ffmpeg, segments, catalog)
    min_video_bytes: int = 2048  # of video payload per stall_timeout, or the stream is stalled


def source_of(peername: Any) -> str:
    """Return the source a peer counts as for per-source limits: its IPv4 address, or its
    IPv6 /64 (one host can use a whole /64, so per-address limits would not hold it)."""
    if not (isinstance(peername, tuple) and peername):
        return "?"
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%")[0])
    except ValueError:
        return str(peername[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


# -- descriptors ------------------------------------------------------------------------------


def raise_open_file_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft, soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. above fs.nr_open: keep what we have
        return soft, soft
    return soft, target


def open_file_limit() -> int:
    """Return the current soft limit on open descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def count_open_fds() -> int | None:
    """Count this process's open descriptors (None where /proc is missing)."""
    try:
        return len(os.listdir(FD_DIR)) - 1  # listdir's own descriptor
    except OSError:
        return None


class FdBudget:
    """Tells whether one more connection leaves ``reserve`` descriptors free.

    Counting /proc/self/fd costs about 0.5 ms per thousand descriptors, so the count is
    refreshed at most every FD_SCAN_SECONDS and connections opened or closed since are
    added on top. The just-accepted socket's own number is a floor: the kernel hands out
    the lowest free descriptor, so every one below it is in use.
    """

    def __init__(self, limit: int, reserve: int, count: Callable[[], int | None] = count_open_fds,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.reserve = limit, reserve
        self._count, self._clock = count, clock
        self._scanned: int | None = None
        self._scanned_at = -float("inf")
        self._delta = 0

    def allows(self, fd: int) -> bool:
        """Tell whether a connection on descriptor ``fd`` may stay open."""
        return max(self.in_use(), fd + 1) <= self.limit - self.reserve

    def in_use(self) -> int:
        """Estimate the descriptors open right now."""
        now = self._clock()
        if now - self._scanned_at >= FD_SCAN_SECONDS:
            self._scanned, self._scanned_at, self._delta = self._count(), now, 0
        return (self._scanned or 0) + self._delta

    def opened(self) -> None:
        """A connection was kept (its descriptor stays open)."""
        self._delta += 1

    def closed(self) -> None:
        """A kept connection was closed."""
        self._delta -= 1


# -- connection admission ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a new connection was closed at once, and the answer it gets."""

    status: int
    reason: str

    def response(self) -> bytes:
        """A complete HTTP/1.1 answer that closes the connection."""
        body = (self.reason + "\n").encode()
        phrase = {429: "Too Many Requests", 503: "Service Unavailable"}.get(self.status, "Error")
        head = (f"HTTP/1.1 {self.status} {phrase}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        return head.encode() + body


class ConnectionGuard:
    """Admits or refuses ingest connections before anything is read from them."""

    def __init__(self, limits: IngestLimits, fd_limit: int | None = None,
                 budget: FdBudget | None = None) -> None:
        self.limits = limits
        limit = fd_limit if fd_limit is not None else open_file_limit()
        self.budget = budget or FdBudget(limit, limits.fd_reserve)
        self.per_source: collections.Counter[str] = collections.Counter()
        self.total = 0
        self.refusals = RefusalLog()

    def open(self, source: str, fd: int) -> Refusal | None:
        """Count a new connection in, or say why it must be closed at once."""
        refusal = self._refusal(source, fd)
        if refusal is not None:
            self.refusals.note(source, refusal)
            return refusal
        self.per_source[source] += 1
        self.total += 1
        self.budget.opened()
        return None

    def close(self, source: str) -> None:
        """Count a kept connection out."""
        self.per_source[source] -= 1
        if self.per_source[source] <= 0:
            del self.per_source[source]
        self.total -= 1
        self.budget.closed()

    def _refusal(self, source: str, fd: int) -> Refusal | None:
        if self.per_source[source] >= self.limits.max_connections_per_source:
            return Refusal(429, f"too many connections from {source} "
                                f"(max_connections_per_source = "
                                f"{self.limits.max_connections_per_source})")
        if self.total >= self.limits.max_connections:
            return Refusal(503, "the hub is at its connection limit (max_connections = "
                                f"{self.limits.max_connections})")
        if not self.budget.allows(fd):
            return Refusal(503, "the hub keeps its last file descriptors for recording "
                                f"(limit {self.budget.limit}, fd_reserve {self.budget.reserve})")
        return None


_BURSTS: weakref.WeakSet[Burst] = weakref.WeakSet()


def flush_logs() -> None:
    """Summarise every burst still open (the hub is stopping)."""
    for burst in list(_BURSTS):
        burst.flush()


class Burst:
    """A run of like events: the first is logged by the caller, the rest are counted here.

    A burst ends when no event came for ``gap`` seconds (or after ``window`` seconds in any
    case); ``summarise`` is then called once with what was counted (perhaps nothing).
    """

    def __init__(self, summarise: Callable[[Burst], None], gap: float = BURST_GAP,
                 window: float = QUIET_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self.summarise, self.gap, self.window, self.clock = summarise, gap, window, clock
        self.started: float | None = None
        self.last = 0.0
        self.count = 0  # events after the first
        self.sources: set[str] = set()
        self.kinds: collections.Counter[str] = collections.Counter()
        _BURSTS.add(self)

    def hit(self, source: str = "", kind: str = "") -> bool:
        """Count one event; return True if it starts a burst (the caller logs it in full)."""
        now = self.expire()
        self.last = now
        if self.started is None:
            self.started = now
            _call_later(self.gap, self._check)
            return True
        self.count += 1
        self.kinds[kind] += 1
        if len(self.sources) < MAX_TRACKED_SOURCES:
            self.sources.add(source)
        return False

    def expire(self) -> float:
        """End the burst if it is over; return the clock's time."""
        now = self.clock()
        if self.started is not None and (now - self.last >= self.gap
                                         or now - self.started >= self.window):
            self.flush()
        return now

    def _check(self) -> None:
        self.expire()
        if self.started is not None:
            _call_later(self.gap, self._check)

    def flush(self) -> None:
        """End the burst: summarise what it counted (if anything), and start afresh."""
        if self.started is not None:
            self.summarise(self)
        self.started, self.count = None, 0
        self.sources.clear()
        self.kinds.clear()

    def seconds(self) -> float:
        """How long the burst has lasted so far."""
        return (self.last - self.started) if self.started is not None else 0.0


def _call_later(delay: float, callback: Callable[[], None]) -> None:
    # Outside a running loop (unit tests), a burst ends at the next event or flush().
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().call_later(delay, callback)


class RefusalLog:
    """Logs the first refused connection of each status in a burst, then one count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = Burst(self._summarise, clock=clock)
        self._logged: set[int] = set()  # statuses logged in full in this burst

    def note(self, source: str, refusal: Refusal) -> None:
        """Count one refused connection; log it if it is the burst's first of its status."""
        self.burst.expire()
        self.burst.hit(source, str(refusal.status))
        if refusal.status not in self._logged:
            self._logged.add(refusal.status)
            logger.warning("refusing ingest connections: %s (from %s; further refusals are "
                           "counted)", refusal.reason, source)

    def _summarise(self, burst: Burst) -> None:
        self._logged.clear()
        if not burst.count:
            return
        statuses = ", ".join(f"{n} x {kind}" for kind, n in sorted(burst.kinds.items()))
        logger.warning("refused %d more ingest connections from %d address(es) in %.0f s (%s)",
                       burst.count, len(burst.sources), burst.seconds(), statuses)


class QuietLog:
    """Logs the first few lines per key (a source address and what happened) in a burst.

    A flood of bad requests must not fill the disk with log lines; what was left out is
    counted and summarised in one line when the burst ends.
    """

    def __init__(self, log: logging.Logger, per_source: int = LINES_PER_SOURCE,
                 per_burst: int = LINES_PER_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.per_source, self.per_burst = log, per_source, per_burst
        self.burst = Burst(self._summarise, clock=clock)
        self._lines: collections.Counter[str] = collections.Counter()
        self._shown = 0
        self._left_out: set[str] = set()  # keys that had lines left out

    def __call__(self, level: int, key: str, message: str, *args: object) -> None:
        """Log one line about ``key``, unless it already had its share in this burst."""
        self.burst.expire()
        if key not in self._lines and len(self._lines) >= MAX_TRACKED_SOURCES:
            key = "*"
        shown = self._lines[key] < self.per_source and self._shown < self.per_burst
        self.burst.hit(key, "shown" if shown else "left out")
        self._lines[key] += 1
        if not shown:
            self._left_out.add(key)
        else:
            self._shown += 1
            self.log.log(level, message, *args, stacklevel=2)

    def _summarise(self, burst: Burst) -> None:
        left_out = burst.kinds["left out"]
        noisy = sorted(self._left_out)
        self._lines.clear()  # the next burst: every source gets its share again
        self._left_out.clear()
        self._shown = 0
        if left_out:
            self.log.warning("%d more ingest log lines like the above left out in %.0f s (%s)",
                             left_out, burst.seconds(),
                             ", ".join(noisy[:5]) + (", ..." if len(noisy) > 5 else ""))


class AcceptErrorLog:
    """An event-loop exception handler that logs accept() failures once per burst.

    When descriptors run out, asyncio's accept loop reports every failed accept (up to its
    backlog of 100 per wake-up, each with a traceback): hundreds of MB of log in a minute.
    """

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
                 | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.previous = previous
        self.burst = Burst(self._summarise, clock=clock)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Handle one exception context of the loop."""
        exc = context.get("exception")
        code = getattr(exc, "errno", None)
        if context.get("message") != self.MESSAGE or code not in ACCEPT_ERRNOS:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        if self.burst.hit(kind=str(code)):
            logger.error("cannot accept ingest connections: %s; asyncio retries every second "
                         "(further failures are counted)", os.strerror(code))

    @staticmethod
    def _summarise(burst: Burst) -> None:
        if burst.count:
            logger.error("%d more failed accepts of ingest connections in %.0f s", burst.count,
                         burst.seconds())


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Route the loop's accept() failures through an AcceptErrorLog (once per loop)."""
    previous = loop.get_exception_handler()
    if not isinstance(previous, AcceptErrorLog):
        loop.set_exception_handler(AcceptErrorLog(previous))


# -- deadlines --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """Bound a whole phase (not each read): trickling bytes does not extend it (408)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise IngestRejected(408, f"{what} did not arrive within {seconds:g} s") from None


# -- the floor of real video ------------------------------------------------------------------


def payload_of(header: bytes) -> int:
    """Count the payload bytes an MPEG-TS packet carries, from its first 5 bytes.

    Null packets (PID 0x1FFF), table PIDs, packets without payload and anything that is
    not a packet count 0: they can hold a connection open without carrying a picture.
    """
    if len(header) < 4 or header[0] != SYNC_BYTE:
        return 0
    pid = ((header[1] & 0x1F) << 8) | header[2]
    control = (header[3] >> 4) & 0x3
    if pid == NULL_PID or pid < FIRST_ES_PID or not control & 0x1:
        return 0
    if control == 0x1:
        return TS_PACKET - 4
    if len(header) < 5:
        return 0
    return max(TS_PACKET - 5 - header[4], 0)


class PayloadCounter:
    """Counts the payload bytes of the TS packets in a stream fed in arbitrary pieces."""

    def __init__(self) -> None:
        self.total = 0
        self._head = b""  # the first (up to 5) bytes of the packet being received
        self._into = 0  # bytes of that packet received so far

    def feed(self, data: bytes, enough: int | None = None) -> None:
        """Take the next bytes of the stream; stop counting once ``total`` reaches ``enough``."""
        view = memoryview(data)
        if self._into:
            take = min(TS_PACKET - self._into, len(view))
            self._head += bytes(view[:max(0, min(take, 5 - len(self._head)))])
            self._into += take
            view = view[take:]
            if self._into < TS_PACKET:
                return
            self.total += payload_of(self._head)
            self._head, self._into = b"", 0
        whole = len(view) // TS_PACKET * TS_PACKET
        if enough is None or self.total < enough:
            self._count_packets(view[:whole], enough)
        rest = view[whole:]
        self._head, self._into = bytes(rest[:5]), len(rest)

    def _count_packets(self, packets: memoryview, enough: int | None) -> None:
        raw = bytes(packets)
        for offset in range(0, len(raw), TS_PACKET):
            self.total += payload_of(raw[offset:offset + 5])
            if enough is not None and self.total >= enough:
                return


class VideoWatchdog:
    """Drops a stream that sends less than ``min_bytes`` of video payload per ``window``.

    Windows follow each other from the moment the stream was admitted; a connection that
    trickles null packets, or one packet every few seconds, is stalled at its window's end.
    """

    def __init__(self, min_bytes: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_bytes, self.window, self._clock = min_bytes, window, clock
        self.counter = PayloadCounter()
        self._window_start = clock()
        self._base = 0  # counter.total when the window started
        self._frames = self._delivered = 0  # observe(): the counts seen so far

    def restart(self) -> None:
        """Start the first window now."""
        self._window_start, self._base = self._clock(), self.counter.total

    def feed(self, data: bytes) -> None:
        """Take relayed bytes."""
        self.counter.feed(data, enough=self._base + self.min_bytes)

    def observe(self, received: int, delivered: int, frames: int) -> None:
        """Take a direct stream's running counts (version 3: the hub sees no payload): bytes
        the kernel received, bytes ffmpeg read, and video frames ffmpeg found.

        Received bytes count once ffmpeg found a new frame in what it read, or while ffmpeg
        read nothing (its read is held until a batch has come: direct.LOWAT_MAX). What ffmpeg
        read without a frame in it (padding), or nothing at all, starves the window.
        """
        if frames > self._frames or delivered <= self._delivered:
            self.counter.total = max(self.counter.total, received)
        self._frames, self._delivered = max(frames, self._frames), max(delivered, self._delivered)

    def starved(self) -> str | None:
        """Say why the stream is stalled if a window ended short of video, else roll on."""
        now = self._clock()
        if now - self._window_start < self.window - CLOCK_SLACK:  # timers may fire a bit early
            return None
        got = self.counter.total - self._base
        if got < self.min_bytes:
            return (f"sent {got} bytes of video in {now - self._window_start:.0f} s "
                    f"(less than {self.min_bytes}; stalled)")
        self._window_start, self._base = now, self.counter.total
        return None

    def read_timeout(self, stall_timeout: float) -> float:
        """How long the next read may wait: until the window ends, if it is still short."""
        if self.counter.total - self._base >= self.min_bytes:
            return stall_timeout
        left = self._window_start + self.window - self._clock()
        return max(min(stall_timeout, left), CLOCK_SLACK)


# -- new camera names -------------------------------------------------------------------------


class NewNameLimiter:
    """At most ``per_source`` new camera names per source address in a sliding window."""

    def __init__(self, per_source: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_source, self.window, self._clock = per_source, window, clock
        self._names: dict[str, collections.deque[tuple[float, str]]] = {}

    def allow(self, source: str, name: str) -> bool:
        """Tell whether ``source`` may create camera ``name`` now; count it if so."""
        now = self._clock()
        self._forget_before(now - self.window)
        names = self._names.setdefault(source, collections.deque())
        if any(known == name for _, known in names):
            return True  # the same name again (a reconnect before it was cataloged)
        if len(names) >= self.per_source:
            return False
        names.append((now, name))
        return True

    def _forget_before(self, cutoff: float) -> None:
        for source in list(self._names):
            names = self._names[source]
            while names and names[0][0] < cutoff:
                names.popleft()
            if not names:
                del self._names[source]
        while len(self._names) > MAX_TRACKED_SOURCES:
            del self._names[next(iter(self._names))]
