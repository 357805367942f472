"""Fixtures and helpers shared by the recordings, playback and export tests (no tests here).

The footage is real: one 6 s H.264 MPEG-TS clip of 160x120 testsrc2 at 10 fps (a keyframe every
second) is cut with ``-c copy -copyts`` into three 2 s segments that tile, once per session.
Catalog rows are written straight into the test's catalog with the recorder's models.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from nvrlib.catalog.models import Camera, Run, Segment
from nvrlib.ffmpeg_bin import ffmpeg_exe
from webapp.extensions import db

from .helpers import Account, AuthActions

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)  # two hours before the fake clock's "now"
CLIP_SECONDS = 2.0
CLIP_COUNT = 3


def make_clips(folder: Path) -> list[Path]:
    """Encode a 6 s clip and split it into three tiling 2 s MPEG-TS segments (idempotent)."""
    parts = [folder / f"part{index:03d}.ts" for index in range(CLIP_COUNT)]
    if all(part.exists() for part in parts):
        return parts
    folder.mkdir(parents=True, exist_ok=True)
    whole = folder / "whole.ts"
    quiet = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    subprocess.run([*quiet, "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
                    "-t", str(CLIP_SECONDS * CLIP_COUNT), "-c:v", "libx264", "-preset", "ultrafast",
                    "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
                    # PTS from 0: ffmpeg 5.1's segment muxer cuts -copyts input at multiples of
                    # segment_time from PTS 0, the wheel's from the first PTS; with the mpegts
                    # muxer's default 1.4 s start, 5.1 made clips of 1, 2, 2 and 1 s
                    "-muxdelay", "0", "-muxpreload", "0",
                    "-f", "mpegts", str(whole)], check=True, timeout=60)
    subprocess.run([*quiet, "-i", str(whole), "-map", "0", "-c", "copy", "-copyts",
                    "-muxdelay", "0", "-muxpreload", "0", "-f", "segment",
                    "-segment_time", str(CLIP_SECONDS), "-segment_format", "mpegts",
                    str(folder / "part%03d.ts")], check=True, timeout=60)
    return parts


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three real 2 s segments that tile (made once per session)."""
    return make_clips(tmp_path_factory.getbasetemp() / "recording-clips")


@dataclass(frozen=True)
class SegmentInfo:
    """A segment row the test wrote."""

    id: int
    camera: str
    start: dt.datetime
    end: dt.datetime
    path: str


class CatalogWriter:
    """Write cameras, runs and segments into the test app's catalog."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.root = Path(app.config["STORAGE_ROOT"])
        self._seq = 0

    def camera(self, name: str, location: str = "") -> int:
        """Add a camera (or return the one of that name); return its id."""
        with self.app.app_context():
            row = db.session.query(Camera).filter_by(name=name).one_or_none()
            if row is None:
                row = Camera(name=name, location=location, first_seen=T0)
                db.session.add(row)
                db.session.commit()
            return row.id

    def run(self, camera: str, run_id: str, start: dt.datetime = T0) -> str:
        """Add a run of ``camera``; return its id."""
        camera_id = self.camera(camera)
        with self.app.app_context():
            db.session.add(Run(id=run_id, camera_id=camera_id, started_at=start, anchor_wall=start))
            db.session.commit()
        return run_id

    def segment(self, camera: str, start: dt.datetime, duration: float = CLIP_SECONDS, *,
                run_id: str | None = None, path: str | None = None, size: int = 1000,
                location: str = "", status: str = "ok", source: Path | None = None,
                backfilled: bool = False) -> SegmentInfo:
        """Add a segment row; with ``source``, copy that file to the row's path first."""
        camera_id = self.camera(camera)
        self._seq += 1
        if path is None:
            path = f"{camera}/{start:%Y-%m-%d}/{camera}-{start:%Y%m%dT%H%M%S%f}-{self._seq:06d}.ts"
        if source is not None:
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            size = target.stat().st_size
        end = start + dt.timedelta(seconds=duration)
        with self.app.app_context():
            row = Segment(camera_id=camera_id, run_id=run_id, seq=self._seq, location=location,
                          start_time=start, end_time=end, duration=duration, size_bytes=size,
                          path=path, codec="h264", width=160, height=120, status=status,
                          created_at=start, backfilled=backfilled)
            db.session.add(row)
            db.session.commit()
            return SegmentInfo(row.id, camera, start, end, path)

    def footage(self, clips: list[Path], camera: str = "porch", start: dt.datetime = T0,
                run_id: str = "run00001", location: str = "Front porch") -> list[SegmentInfo]:
        """Add the three real clips as one run's tiling segments from ``start``."""
        self.camera(camera, location)
        self.run(camera, run_id, start)
        return [self.segment(camera, start + dt.timedelta(seconds=CLIP_SECONDS * index),
                             run_id=run_id, location=location, source=clip)
                for index, clip in enumerate(clips)]


@pytest.fixture
def catalog(app: Flask) -> CatalogWriter:
    """Write catalog rows for ``app``."""
    return CatalogWriter(app)


@pytest.fixture
def viewer_client(client: FlaskClient, auth: AuthActions, viewer_user: Account) -> FlaskClient:
    """``client``, logged in as a viewer."""
    auth.login(viewer_user)
    return client


def iso(value: dt.datetime) -> str:
    """Format a time as the API does (ISO-8601 UTC, ``Z``)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def at(seconds: float) -> dt.datetime:
    """Return ``T0`` plus ``seconds``."""
    return T0 + dt.timedelta(seconds=seconds)


SegmentMaker = Callable[..., SegmentInfo]
