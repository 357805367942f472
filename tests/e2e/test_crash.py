"""Abrupt stops lose nothing: kill -9 of the hub or of one ffmpeg, and a clean SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.media import decode_fully, segments
from tests.support.procs import LoggedProcess, ffmpeg_pusher, running, wait_for


def incoming_files(hub, camera: str) -> list[Path]:
    """Open (or interrupted) segment files of a camera."""
    folder = hub.storage / camera / ".incoming"
    return sorted(p for p in folder.glob("*.ts") if p.stat().st_size > 0) if folder.exists() else []


def open_bytes(hub, camera: str) -> int:
    """Bytes in a camera's open segment files (0 while none; one may be moved away meanwhile)."""
    total = 0
    for path in (hub.storage / camera / ".incoming").glob("*.ts"):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def assert_catalog_consistent(hub) -> None:
    """Every 'ok' row's file exists and decodes completely with its cataloged duration."""
    for row in segments(hub.db_path):
        if row.status != "ok":
            continue
        decoded = decode_fully(hub.storage / row.path)
        assert decoded.errors == 0, row.path
        assert abs(decoded.duration - row.duration) < 0.1, (row, decoded)


def test_kill_9_of_the_hub_mid_segment_then_restart_recovers(hub_factory):
    hub = hub_factory(segment_seconds=4).start()
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: len(segments(hub.db_path, "porch")) >= 2, 30, "two segments")
        wait_for(lambda: any(p.stat().st_size > 300_000 for p in incoming_files(hub, "porch")),
                 20, "a half-written segment")
        children = hub.ffmpeg_children()
        assert children
        hub.process.kill()
        # the segmenter dies with the hub (parent-death signal): nothing keeps writing
        wait_for(lambda: not hub.ffmpeg_children(), 10, "ffmpeg to die with the hub")
    # the open segment, plus (rarely) one ffmpeg had listed that the hub had no time to
    # catalog (still in .incoming, or already moved to its day folder: killed between the
    # rename and the insert), or the next file opened with no frame yet (quarantined at start)
    rows_before = segments(hub.db_path, "porch")
    cataloged = {row.path for row in rows_before}
    moved = [p for p in (hub.storage / "porch").glob("[0-9]*/*.ts")
             if str(p.relative_to(hub.storage)) not in cataloged]
    files = len(list((hub.storage / "porch" / ".incoming").glob("*.ts"))) + len(moved)
    assert 1 <= len(incoming_files(hub, "porch")) + len(moved) <= 2
    vanished = hub.storage / rows_before[0].path
    vanished.unlink()  # a file lost while the hub was down
    junk = hub.storage / "porch" / ".incoming" / "deadbeef-000000.ts"
    junk.write_bytes(b"\x47" + os.urandom(188 * 50))

    hub.start()
    line = hub.process.wait_line(r"reconciled storage: (\d+) recovered, (\d+) quarantined, 1 missing")
    left, quarantined = int(line[1]), int(line[2])
    assert left >= 1 and left + quarantined == files + 1  # + the junk file
    assert hub.stop() == 0

    rows = {r.path: r for r in segments(hub.db_path, "porch")}
    assert rows[rows_before[0].path].status == "missing"
    recovered = sorted((r for r in rows.values() if r.recovered), key=lambda r: r.start)
    assert len(recovered) == left and sum(r.duration for r in recovered) > 1.0
    assert (hub.storage / ".quarantine" / "porch" / junk.name).exists()
    assert not incoming_files(hub, "porch")
    assert_catalog_consistent(hub)
    ok = sorted((r for r in rows.values() if r.status == "ok"), key=lambda r: r.start)
    # the recovered segment sits right after the last one cataloged before the crash
    before_crash = [r for r in ok if not r.recovered][-1]
    assert abs((recovered[0].start - before_crash.end).total_seconds()) <= 0.041


def test_stale_ffmpeg_writing_into_storage_is_reaped_at_start(hub_factory):
    hub = hub_factory()
    incoming = hub.storage / "ghost" / ".incoming"
    incoming.mkdir(parents=True)
    stale = LoggedProcess([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                           "-i", "testsrc2=size=160x120:rate=10", "-c:v", "libx264", "-f", "segment",
                           "-segment_time", "2", str(incoming / "0badf00d-%06d.ts")])
    with running(stale):
        wait_for(lambda: list(incoming.glob("*.ts")), 10, "the stale ffmpeg to write")
        hub.start()
        # SIGTERM first: it finishes its open segment and exits by itself
        assert stale.proc.wait(10) == 255
        hub.process.wait_line(r"stopped 1 stale ffmpeg process")


def kill_victims_ffmpeg_until_a_segment_is_recovered(hub, tries: int = 3) -> None:
    """SIGKILL the victim's ffmpeg while its open segment holds frames; wait for the recovery.

    Killed right at a boundary, the new file holds no frame and is dropped, not recovered: a
    loaded machine can let ffmpeg cut between the size check and the kill, so try again then.
    """
    for attempt in range(1, tries + 1):
        wait_for(lambda: open_bytes(hub, "victim") > 30_000, 15, "an open segment with frames")
        pid = next(p for p in hub.ffmpeg_children()
                   if any("victim" in a for a in Path(f"/proc/{p}/cmdline").read_text().split("\0")))
        os.kill(pid, signal.SIGKILL)
        try:  # a torn end is decoded twice
            hub.process.wait_line(r"recovered segment victim/.* after its ffmpeg died", 30)
            return
        except AssertionError:
            if attempt == tries:
                raise AssertionError(f"no segment recovered after {tries} kills:\n"
                                     f"{hub.output[-4000:]}") from None


@pytest.mark.both_ffmpegs
def test_kill_9_of_one_ffmpeg_restarts_it_and_recovers_its_segment(hub_factory):
    hub = hub_factory(segment_seconds=3).start()
    other = ffmpeg_pusher(hub.url("other"))
    victim = ffmpeg_pusher(hub.url("victim"))
    with running(other, victim):
        wait_for(lambda: segments(hub.db_path, "victim") and segments(hub.db_path, "other"), 30,
                 "both streams recording")
        kill_victims_ffmpeg_until_a_segment_is_recovered(hub)
        count = len(segments(hub.db_path, "victim"))
        wait_for(lambda: len(segments(hub.db_path, "victim")) >= count + 2, 30,
                 "the restarted ffmpeg to record")
        assert victim.proc.poll() is None and other.proc.poll() is None
    assert hub.stop() == 0
    assert "ffmpeg exited (-9)" in hub.output
    others = segments(hub.db_path, "other")
    for before, after in zip(others, others[1:]):
        assert abs((after.start - before.end).total_seconds()) <= 0.041
    assert_catalog_consistent(hub)


@pytest.mark.both_ffmpegs
def test_sigterm_finishes_the_open_segment_and_exits_cleanly(hub_factory):
    hub = hub_factory(segment_seconds=10).start()
    pusher = ffmpeg_pusher(hub.url("porch"))
    with running(pusher):
        wait_for(lambda: any(p.stat().st_size > 200_000 for p in incoming_files(hub, "porch")),
                 30, "a segment in progress")
        assert hub.stop() == 0
    rows = segments(hub.db_path, "porch")
    assert len(rows) == 1 and rows[0].duration > 1.0 and not rows[0].recovered
    assert not incoming_files(hub, "porch")
    assert not hub.ffmpeg_children()
    assert_catalog_consistent(hub)
