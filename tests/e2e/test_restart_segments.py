"""A restarted stream that has run for a while is cut into whole segments at the right times.

ffmpeg 5.1's segment muxer counts its cuts from PTS 0 in every new process, so a run started
on a stream whose PTS are already 600 s in used to cut at every keyframe (1-s segments, one per
GOP) for as long as the stream had run. The hub is run here on the wheel's ffmpeg and on
Debian's (tests/support/ffmpegs.py), with stock ffmpeg pushers whose PTS start 600 s in, one
with an X-NVR-Stream-Epoch (as our edge sends) and one without (a stock camera).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.control_mark import nudge
from nvrlib.catalog.models import Command, Run
from recorder.supervise.segmenter import PTS_MARGIN_SECONDS
from tests.support.ffmpegs import BUILDS, build
from tests.support.media import Row, segments
from tests.support.procs import ffmpeg_pusher, running, wait_for

pytestmark = pytest.mark.e2e

SEGMENT = 2.0
STREAM_AGE = 600.0  # seconds of PTS the streams have "already run"
CAMERAS = ("porch", "yard")  # porch sends an epoch, yard does not
# How long after its end a segment may appear in the catalog, either way. A wrong wall-clock
# mapping (the stream's own PTS taken for time since the epoch, a shift applied twice or not
# at all) is off by about STREAM_AGE; a loaded machine only delays cataloging by seconds.
LAG_TOLERANCE = STREAM_AGE / 10


@pytest.fixture(params=BUILDS)
def hub_ffmpeg(request: pytest.FixtureRequest) -> str:
    """The ffmpeg the hub runs: the imageio-ffmpeg wheel's, or Debian's 5.1."""
    return build(request.param)


def run_of(row: Row) -> str:
    """The run id in a final segment name: <camera>-<start>-<run>-<seq>.ts."""
    return row.path.rsplit("/", 1)[-1].split("-")[-2]


class Watcher:
    """Polls the catalog and notes when each segment row was first seen (wall clock)."""

    def __init__(self, db_path) -> None:  # type: ignore[no-untyped-def]
        self.db_path = db_path
        self.seen: dict[int, dt.datetime] = {}

    def rows(self, camera: str) -> list[Row]:
        rows = segments(self.db_path)  # every camera's, so that none is seen late
        now = dt.datetime.now(dt.timezone.utc)
        for row in rows:
            self.seen.setdefault(row.id, now)
        return [row for row in rows if row.camera == camera]

    def runs(self, camera: str) -> dict[str, list[Row]]:
        grouped: dict[str, list[Row]] = {}
        for row in self.rows(camera):
            grouped.setdefault(run_of(row), []).append(row)
        return grouped


def restart(db_url: str, storage: Path, camera: str) -> str:
    """Ask the hub to restart a camera, as the web app's admin panel does; return its answer."""
    engine = make_engine(db_url)
    try:
        with Session(engine) as session, session.begin():
            command = Command(camera=camera, action="restart", requested_by="test", result="")
            session.add(command)
            session.flush()
            command_id = command.id
        nudge(storage)  # the admin panel's doorbell: the hub reads the command at once

        def answer() -> str | None:
            with Session(engine) as session:
                row = session.get(Command, command_id)
                return row.result if row is not None and row.done_at else None

        return wait_for(answer, 10, f"the answer to restarting {camera}")
    finally:
        engine.dispose()


def first_keyframe_times(db_url: str, runs: list[list[Row]]) -> list[float]:
    """Where each run's first frame sits on its own shifted timeline (seconds)."""
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            anchors = {run.id: run for run in session.scalars(select(Run))}
    finally:
        engine.dispose()
    times = []
    for rows in runs:
        run = anchors[run_of(rows[0])]
        assert run.anchor_pts is not None
        times.append((rows[0].start - run.anchor_wall).total_seconds() + run.anchor_pts)
    return times


def segmenter_pid(hub, camera: str) -> int | None:  # type: ignore[no-untyped-def]
    """The process id of the hub's ffmpeg that writes a camera's segments."""
    for pid in hub.ffmpeg_children():
        with contextlib.suppress(OSError):
            if f"/{camera}/.incoming/".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def new_run_recorded(watcher: Watcher, camera: str, known: set[str]) -> bool:
    """Tell whether a run not in ``known`` has cataloged a short first and two whole segments."""
    return any(len(rows) >= 3 for run, rows in watcher.runs(camera).items() if run not in known)


def test_restart_of_a_long_running_stream_keeps_segment_length_and_wall_clock(
        hub_factory, hub_ffmpeg: str) -> None:
    hub = hub_factory(segment_seconds=SEGMENT, env={"NVR_FFMPEG": hub_ffmpeg}).start()
    epoch = time.time() - STREAM_AGE
    old = ("-output_ts_offset", f"{STREAM_AGE:g}")
    pushers = [
        ffmpeg_pusher(hub.url("porch"), size="320x240", output_args=old,
                      extra_headers=f"X-NVR-Stream-Epoch: {epoch:.3f}\r\n"),
        ffmpeg_pusher(hub.url("yard"), size="320x240", output_args=old),
    ]
    watcher = Watcher(hub.db_path)
    with running(*pushers):
        for camera in CAMERAS:
            wait_for(lambda c=camera: len(watcher.rows(c)) >= 3, 30, f"{camera}'s first run")
        known = {camera: set(watcher.runs(camera)) for camera in CAMERAS}
        for camera in CAMERAS:  # the admin panel's Restart
            assert restart(hub.db_url, hub.storage, camera) == "ok: ffmpeg restarted"
        for camera in CAMERAS:
            wait_for(lambda c=camera: new_run_recorded(watcher, c, known[c]), 30,
                     f"{camera} after the restart")
            known[camera] = set(watcher.runs(camera))
        for camera in CAMERAS:  # ffmpeg dies: the supervisor starts a new one after a back-off
            pid = wait_for(lambda c=camera: segmenter_pid(hub, c), 10, f"{camera}'s ffmpeg")
            os.kill(pid, signal.SIGKILL)
        for camera in CAMERAS:
            wait_for(lambda c=camera: new_run_recorded(watcher, c, known[c]), 30,
                     f"{camera} after its ffmpeg died")
        # read before the pushers stop: their last segment is cut short when they do
        recorded = {camera: watcher.runs(camera) for camera in CAMERAS}
    for camera in CAMERAS:
        runs = sorted(recorded[camera].values(), key=lambda rows: rows[0].start)
        assert len(runs) == 3, f"{camera}: before the restart, after it, after the kill: {runs}"
        # whole segments, except the first of each run and the last one a restart cut short
        whole = [row for rows in runs[:-1] for row in rows[1:-1]] + runs[-1][1:]
        assert all(abs(row.duration - SEGMENT) <= 0.1 for row in whole), \
            f"{camera}: {[[round(row.duration, 2) for row in rows] for rows in runs]}"
        # each run's timeline is shifted from the first keyframe its ffmpeg writes, whatever
        # the load: that keyframe is at the margin, so a cut never comes a GOP early
        starts = first_keyframe_times(hub.db_url, runs)
        assert all(abs(start - PTS_MARGIN_SECONDS) <= 0.01 for start in starts), \
            f"{camera}: runs start at {[round(start, 3) for start in starts]} s of their timeline"
        # the admin restart loses at most a moment, and the new run continues the same clock
        gap = (runs[1][0].start - runs[0][-1].end).total_seconds()
        assert -0.1 <= gap <= 3.0, f"{camera}: {gap:.2f} s between the runs"
        # each segment is placed at the wall-clock time it was live: it appears in the catalog
        # soon after its end, not STREAM_AGE before or after
        for rows in runs:
            lags = [(watcher.seen[row.id] - row.end).total_seconds() for row in rows]
            assert all(abs(lag) <= LAG_TOLERANCE for lag in lags), \
                f"{camera}: segments appeared {[round(lag, 1) for lag in lags]} s after their end"
