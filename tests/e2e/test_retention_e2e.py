"""Retention in a running hub: a tiny budget and a nearly full filesystem, with real pushers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera, RecordingLock
from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.media import segments
from tests.support.procs import LoggedProcess, ffmpeg_pusher, running, wait_for
from tests.support.requirements import require

pytestmark = pytest.mark.e2e

UTC = dt.timezone.utc
TOLERANCE = 0.1  # seconds: names carry milliseconds, the log two decimals
_SEGMENT_LINE = re.compile(
    r"(?P<camera>[\w.-]+): segment (?P<path>\S+-(?P<stamp>\d{8}T\d{6}\.\d{3})Z-(?P<run>[0-9a-f]+)-"
    r"(?P<seq>\d+)\.ts), (?P<duration>[\d.]+) s")


@dataclasses.dataclass(frozen=True)
class Logged:
    """A segment the hub cataloged, as its log line tells (deleted ones included)."""

    path: str
    start: dt.datetime
    duration: float
    run: str
    seq: int

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.duration)


def logged_segments(hub, camera: str) -> list[Logged]:
    """Every segment of ``camera`` the hub's log says it cataloged, in order."""
    found = []
    for match in _SEGMENT_LINE.finditer(hub.output):
        if match["camera"] == camera:
            start = dt.datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
            found.append(Logged(match["path"], start, float(match["duration"]), match["run"],
                                int(match["seq"])))
    return found


def assert_never_stopped(logged: list[Logged]) -> None:
    """One ffmpeg run whose numbered segments follow each other without a gap."""
    assert {seg.run for seg in logged} == {logged[0].run}, "ffmpeg was restarted"
    assert [seg.seq for seg in logged] == list(range(logged[0].seq, logged[0].seq + len(logged)))
    for before, after in zip(logged, logged[1:]):
        gap = (after.start - before.end).total_seconds()
        assert abs(gap) <= TOLERANCE, f"{gap:+.3f} s between {before.path} and {after.path}"


def assert_catalog_matches_disk(hub) -> None:
    """Every row names a file in a day folder and every such file has a row; none half-deleted."""
    rows = segments(hub.db_path)
    assert {row.status for row in rows} <= {"ok"}, {row.status for row in rows}
    on_disk = {str(p.relative_to(hub.storage)) for p in hub.storage.glob("*/????-??-??/*.ts")}
    assert {row.path for row in rows} == on_disk


def assert_oldest_went_first(logged: list[Logged], kept: set[str],
                             locked: set[str]) -> list[Logged]:
    """Every deleted segment is older than every unlocked one kept; return the deleted."""
    deleted = [seg for seg in logged if seg.path not in kept]
    survivors = [seg for seg in logged if seg.path in kept and seg.path not in locked]
    assert deleted and survivors
    assert max(seg.start for seg in deleted) < min(seg.start for seg in survivors)
    assert logged[-1].path in kept  # the newest footage is never what goes
    return deleted


def add_lock(hub, start: dt.datetime, end: dt.datetime, camera: str | None = None) -> None:
    """Save a lock in the hub's catalog, as the web app does."""
    engine = db.make_engine(hub.db_url)
    try:
        with Session(engine) as session, session.begin():
            camera_id = None if camera is None else session.scalar(
                select(Camera.id).where(Camera.name == camera))
            session.add(RecordingLock(camera_id=camera_id, start_time=start, end_time=end,
                                      note="e2e", created_by="test"))
    finally:
        engine.dispose()


def surely_overlaps(seg: Logged, start: dt.datetime, end: dt.datetime) -> bool:
    """Overlap by more than the log's rounding: the hub must treat the segment as locked."""
    margin = dt.timedelta(seconds=TOLERANCE)
    return seg.start < end - margin and seg.end > start + margin


def possibly_overlaps(seg: Logged, start: dt.datetime, end: dt.datetime) -> bool:
    """Overlap within the log's rounding: the hub may treat the segment as locked."""
    margin = dt.timedelta(seconds=TOLERANCE)
    return seg.start < end + margin and seg.end > start - margin


def record_for(seconds: float, *processes: LoggedProcess, sample=None) -> None:
    """Let the pushers run for ``seconds``, calling ``sample`` now and then; fail if one dies."""
    deadline = time.monotonic() + seconds

    def over() -> bool:
        for process in processes:
            assert process.proc.poll() is None, process.output[-2000:]
        if sample is not None:
            sample()
        return time.monotonic() > deadline

    wait_for(over, seconds + 5, "the recording window", interval=0.1)


BUDGET = 500_000  # bytes: about ten 1-s segments of a 320x240 test pattern
BUDGET_CONFIG = f"""
disk_check_interval = 0.5

[retention]
max_gb = {BUDGET / 1e9}
interval = 1
min_free_gb = 0
min_free_percent = 0
"""


def test_a_tiny_budget_deletes_the_oldest_keeps_locked_footage_and_never_stops_recording(
        hub_factory):
    hub = hub_factory(config=BUDGET_CONFIG, segment_seconds=1).start()
    began = dt.datetime.now(UTC)
    every_camera = (began + dt.timedelta(seconds=9), began + dt.timedelta(seconds=10))
    add_lock(hub, *every_camera)  # before any footage exists
    pusher = ffmpeg_pusher(hub.url("porch"), size="320x240", rate=15)
    with running(pusher):
        wait_for(lambda: len(segments(hub.db_path, "porch")) >= 3, 30, "three segments")
        second = segments(hub.db_path, "porch")[1]
        porch_only = (second.start, second.end)
        add_lock(hub, *porch_only, camera="porch")  # long before the budget reaches it
        wait_for(lambda: "retention: deleted" in hub.output, 40, "a retention deletion")
        record_for(12, pusher)
        pusher.terminate()
    assert hub.stop() == 0, hub.output[-3000:]

    logged = logged_segments(hub, "porch")
    assert len(logged) >= 20
    assert_never_stopped(logged)
    rows = segments(hub.db_path, "porch")
    kept = {row.path for row in rows}
    locks = (every_camera, porch_only)
    locked = {seg.path for seg in logged if any(surely_overlaps(seg, *lock) for lock in locks)}
    assert len(locked) >= 2 and locked <= kept, "locked footage was deleted"
    maybe_locked = {seg.path for seg in logged if any(possibly_overlaps(seg, *lk) for lk in locks)}
    deleted = assert_oldest_went_first(logged, kept, maybe_locked)
    assert len(deleted) >= 8
    newest = max(row.size_bytes for row in rows)
    # the last segments may arrive after the last pass
    assert sum(row.size_bytes for row in rows) <= BUDGET + 3 * newest
    assert_catalog_matches_disk(hub)


# -- a nearly full filesystem ------------------------------------------------------------------

TMPFS_SIZE = 48 * 2**20
MARGIN_PERCENT = 25  # of 48 MiB: a 12 MiB safety margin
ROOM_BEFORE_MARGIN = 4 * 2**20  # what the pusher fills before the first emergency


def mount_tmpfs(path: Path) -> None:
    """Mount a small tmpfs at ``path``, or fail with the reason."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        require("the mount command (util-linux) is not installed")
    result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(path)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        require(f"cannot mount a tmpfs ({result.stderr.strip()}): this test needs root or "
                f"CAP_SYS_ADMIN")


def unmount(path: Path) -> None:
    """Unmount ``path``; lazily if something still holds it."""
    umount = shutil.which("umount") or "umount"
    if subprocess.run([umount, str(path)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run([umount, "-l", str(path)], capture_output=True, timeout=30)


def cbr_pusher(url: str) -> LoggedProcess:
    """A stock ffmpeg pushing a small picture padded to a constant 4 Mbit/s (~0.5 MB a second)."""
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "warning", "-re", "-f", "lavfi",
            "-i", "testsrc2=size=320x240:rate=15", "-c:v", "libx264", "-preset", "veryfast",
            "-tune", "zerolatency", "-g", "15", "-pix_fmt", "yuv420p", "-b:v", "4M",
            "-minrate", "4M", "-maxrate", "4M", "-bufsize", "1M", "-x264-params", "nal-hrd=cbr",
            "-f", "mpegts", url]
    return LoggedProcess(argv)


TMPFS_CONFIG = f"""
disk_check_interval = 0.5

[retention]
days = 0
min_free_gb = 0
min_free_percent = {MARGIN_PERCENT}
interval = 1
"""


def test_a_nearly_full_filesystem_gets_room_from_the_oldest_footage_and_recording_goes_on(
        hub_factory):
    hub = hub_factory(config=TMPFS_CONFIG, segment_seconds=1)
    mount_tmpfs(hub.storage)
    try:
        stats = os.statvfs(hub.storage)
        total = stats.f_blocks * stats.f_frsize
        margin = total * MARGIN_PERCENT // 100
        # someone else's data fills the disk to just above the margin
        ballast = hub.storage / "ballast.bin"
        ballast.write_bytes(bytes(total - margin - ROOM_BEFORE_MARGIN))
        hub.start()
        lowest = [total]

        def sample() -> None:
            now = os.statvfs(hub.storage)
            lowest[0] = min(lowest[0], now.f_bavail * now.f_frsize)

        pusher = cbr_pusher(hub.url("porch"))
        with running(pusher):
            wait_for(lambda: sample() or "retention: disk nearly full" in hub.output, 40,
                     "the first emergency deletion", interval=0.1)
            record_for(15, pusher, sample=sample)
            pusher.terminate()
        assert hub.stop() == 0, hub.output[-3000:]

        assert 0 < lowest[0] and lowest[0] > margin // 2, (lowest[0], margin)
        assert "No space left" not in hub.output
        logged = logged_segments(hub, "porch")
        assert len(logged) >= 20
        assert_never_stopped(logged)
        kept = {row.path for row in segments(hub.db_path, "porch")}
        deleted = assert_oldest_went_first(logged, kept, locked=set())
        assert len(deleted) >= 8
        assert_catalog_matches_disk(hub)
        assert ballast.stat().st_size == total - margin - ROOM_BEFORE_MARGIN
    finally:
        if hub.process is not None and hub.process.proc.poll() is None:
            hub.stop()
        unmount(hub.storage)
