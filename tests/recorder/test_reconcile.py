"""Start-up reconciliation on a real SQLite catalog and real MPEG-TS files made by ffmpeg."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from nvrlib.catalog import db
from nvrlib.catalog.models import Segment
from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.store.catalog import Catalog, RunInfo
from recorder.store.reconcile import reap_stale_ffmpeg, reconcile, recover_run_leftovers
from recorder.store.storage import Storage
from tests.support.media import ffmpeg_complaints, pyav_complaints


@pytest.fixture(scope="module")
def sample_ts(tmp_path_factory) -> bytes:
    """Three seconds of H.264 in MPEG-TS."""
    path = tmp_path_factory.mktemp("media") / "sample.ts"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc2=size=160x120:rate=25", "-t", "3", "-c:v", "libx264",
                    "-g", "25", "-pix_fmt", "yuv420p", "-f", "mpegts", str(path)],
                   check=True, timeout=60)
    return path.read_bytes()


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    db.upgrade(engine)
    yield Catalog(engine, Storage(tmp_path / "rec"))
    engine.dispose()


def rows(catalog: Catalog) -> list[Segment]:
    with catalog.session() as session:
        return list(session.scalars(select(Segment).order_by(Segment.start_time)))


def test_interrupted_file_of_an_unknown_run_and_camera_is_recovered(catalog, sample_ts):
    incoming = catalog.storage.incoming_dir("lost-cam")
    (incoming / "abcdef12-1000000.ts").write_bytes(sample_ts)  # seq past 999999
    report = reconcile(catalog, catalog.storage)
    assert len(report.recovered) == 1
    [row] = rows(catalog)
    assert row.recovered and row.status == "ok" and row.seq == 1000000
    assert abs(row.duration - 3.0) < 0.1
    assert (catalog.storage.root / row.path).exists()
    assert not list(incoming.iterdir())


def test_uncataloged_final_file_is_cataloged_at_the_time_its_name_gives(catalog, sample_ts):
    start = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    info = RunInfo(run_id="0123abcd", camera="porch", location="", anchor_wall=start, anchor_pts=0)
    catalog.start_run(info, kind="push", peer="")
    path = catalog.storage.final_path("porch", start, "0123abcd", 7)
    path.parent.mkdir(parents=True)
    path.write_bytes(sample_ts)
    reconcile(catalog, catalog.storage)
    [row] = rows(catalog)
    assert row.start_time == start
    assert row.path == str(path.relative_to(catalog.storage.root))


@pytest.mark.parametrize(("folder", "name", "content"), [
    ("porch", "deadbeef-000000.ts", b"\x47" + bytes(188 * 20)),  # no decodable frame
    ("porch", "deadbeef-000001.ts", b""),  # opened by ffmpeg, nothing written yet
    ("porch", "holiday.ts", None),  # a name the hub never writes
    ("bad name", "deadbeef-000000.ts", None),  # a folder that is no camera name
])
def test_files_that_cannot_be_cataloged_are_quarantined_not_deleted(
        catalog, sample_ts, folder, name, content):
    path = catalog.storage.root / folder / ".incoming" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(content if content is not None else sample_ts)
    report = reconcile(catalog, catalog.storage)
    assert len(report.quarantined) == 1 and not rows(catalog)
    quarantined = catalog.storage.root / ".quarantine" / folder / name
    assert quarantined.read_bytes() == (content if content is not None else sample_ts)


@pytest.mark.parametrize("recover", ["at start-up", "after its ffmpeg died"])
def test_a_torn_interrupted_file_is_cut_to_its_last_complete_frame_then_cataloged(
        catalog, sample_ts, recover):
    info = RunInfo(run_id="abcdef12", camera="porch", location="",
                   anchor_wall=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), anchor_pts=None)
    catalog.start_run(info, kind="push", peer="")
    torn = sample_ts[:len(sample_ts) * 2 // 3 + 101]  # mid-packet, inside a frame
    (catalog.storage.incoming_dir("porch") / "abcdef12-000003.ts").write_bytes(torn)
    if recover == "at start-up":
        report = reconcile(catalog, catalog.storage)
    else:
        report = recover_run_leftovers(catalog, "porch", "abcdef12")
    [row] = rows(catalog)
    assert report.trimmed == report.recovered == [row.path]
    assert row.recovered and row.note.startswith("interrupted segment; torn end cut (")
    path = catalog.storage.root / row.path
    assert row.size_bytes == path.stat().st_size < len(torn)
    assert path.read_bytes() == torn[:row.size_bytes]
    assert ffmpeg_complaints(path) == "" and pyav_complaints(path) == []
    assert 1.5 < row.duration < 2.1


def test_an_intact_file_found_on_disk_is_cataloged_unchanged(catalog, sample_ts):
    (catalog.storage.incoming_dir("porch") / "abcdef12-000000.ts").write_bytes(sample_ts)
    report = reconcile(catalog, catalog.storage)
    [row] = rows(catalog)
    assert report.trimmed == [] and row.note == "interrupted segment"
    assert (catalog.storage.root / row.path).read_bytes() == sample_ts


def test_rows_whose_file_vanished_are_marked_missing_not_deleted(catalog, sample_ts):
    (catalog.storage.incoming_dir("porch") / "abcdef12-000000.ts").write_bytes(sample_ts)
    reconcile(catalog, catalog.storage)
    [row] = rows(catalog)
    (catalog.storage.root / row.path).unlink()
    report = reconcile(catalog, catalog.storage)
    assert report.missing == [row.path]
    assert rows(catalog)[0].status == "missing"


def test_paths_outside_the_storage_root_are_refused(tmp_path):
    storage = Storage(tmp_path / "rec")
    with pytest.raises(ValueError):
        storage.resolve_catalog_path("../../etc/passwd")
    assert storage.resolve_catalog_path("cam/x.ts") == (tmp_path / "rec" / "cam" / "x.ts").resolve()


def test_a_second_hub_cannot_take_the_same_storage(tmp_path):
    from recorder.errors import StorageLocked

    first, second = Storage(tmp_path), Storage(tmp_path)
    first.lock()
    try:
        with pytest.raises(StorageLocked):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()



def test_a_stale_ffmpeg_gets_sigterm_and_finishes_its_open_segment(tmp_path):
    incoming = Storage(tmp_path / "rec").incoming_dir("porch")
    # like an orphaned RTSP pull: it records until told to stop
    stale = subprocess.Popen(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
         "-i", "testsrc2=size=160x120:rate=25", "-c:v", "libx264", "-g", "25", "-f", "segment",
         "-segment_time", "100", "-segment_format", "mpegts", str(incoming / "abcdef12-%06d.ts")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        time.sleep(1.5)  # no condition to wait for: the footage sits unseen in its buffers
        assert reap_stale_ffmpeg(tmp_path / "rec", grace=10) == [stale.pid]
        assert stale.wait(1) == 255  # it exited by itself after SIGTERM, not killed
    finally:
        stale.kill()
        stale.wait()
    [path] = incoming.iterdir()
    assert path.stat().st_size > 0 and ffmpeg_complaints(path) == ""


def test_a_stale_ffmpeg_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    incoming = Storage(tmp_path / "rec").incoming_dir("porch")
    # a process that looks like an ffmpeg writing there, and ignores SIGTERM
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
           "print(flush=True); time.sleep(60)"
    stubborn = subprocess.Popen([sys.executable, "-c", code, "ffmpeg", str(incoming / "x.ts")],
                                stdout=subprocess.PIPE, start_new_session=True)
    try:
        stubborn.stdout.readline()  # its handler is installed
        reaped = reap_stale_ffmpeg(tmp_path / "rec", grace=0.5)
        assert reaped == [stubborn.pid]
        assert stubborn.wait(5) == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait()
        stubborn.stdout.close()
