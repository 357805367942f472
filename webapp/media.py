"""Media work of the web app: HLS playlists, segment files, thumbnails and MP4 exports.

Nothing here reads a request: the views in ``webapp.api.recordings`` and
``webapp.recordings.routes`` turn requests into these calls. Every file is found from a catalog
path through `recorder.store.storage.Storage.resolve_catalog_path`, which refuses paths that leave the
storage root (the storage of the segment's hub: ``webapp.hub_storage``); ffmpeg runs with an
argument list, never a shell.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2

from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.store.storage import Storage

from .catalog_queries import SegmentRow, Span, iso_utc, tiles

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
HLS_VERSION = 3  # decimal EXTINF durations
THUMB_WIDTH = 320
THUMB_JPEG_QUALITY = 80
EXPORTS_DIR = ".exports"
STALE_EXPORT_SECONDS = 6 * 3600  # left behind only if the process died mid-export
STDERR_LINES = 40
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]+")


class MediaError(Exception):
    """Media work that failed."""


class SegmentFileMissing(MediaError):
    """A cataloged segment whose file is not (or no longer) on disk, or lies outside the root."""


class ThumbnailFailed(MediaError):
    """No picture could be decoded from a segment."""


class ExportFailed(MediaError):
    """ffmpeg could not remux the segments into an MP4."""


# --- HLS ------------------------------------------------------------------------------------

def span_of(row: SegmentRow) -> Span:
    """Return the `Span` tuple of a full segment row."""
    return (row.id, row.start, row.end, row.duration, row.run_id)


def needs_discontinuity(previous: Span, current: Span) -> bool:
    """Tell whether ``current`` must start a new HLS discontinuity after ``previous``.

    Within one run the PTS are continuous (``-copyts``), so tiling segments of the same run play
    on; a gap, an overlap or another (or an unknown) run restarts the timestamps.
    """
    _, _, previous_end, _, previous_run = previous
    _, start, _, _, run = current
    same_run = run is not None and run == previous_run
    return not (same_run and tiles(previous_end, start))


def hls_playlist(spans: Sequence[Span], uri_for: Callable[[int], str]) -> str:
    """Return an HLS VOD media playlist of ``spans`` (oldest first); ``uri_for(id)`` names each.

    Each segment carries its PROGRAM-DATE-TIME, so players can show the wall-clock time across
    discontinuities; EXTINF durations are the catalog's.
    """
    target = max((math.ceil(span[3]) for span in spans), default=1)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{max(target, 1)}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD"]
    previous: Span | None = None
    for span in spans:
        segment_id, start, _, duration, _ = span
        if previous is not None and needs_discontinuity(previous, span):
            lines.append("#EXT-X-DISCONTINUITY")
        # One string per segment: a 24-hour playlist has ~8,640 of them.
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso_utc(start)}\n"
                     f"#EXTINF:{duration:.3f},\n{uri_for(segment_id)}")
        previous = span
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# --- segment files --------------------------------------------------------------------------

def segment_file(root: str | Path, relative: str) -> Path:
    """Return the absolute path of a cataloged file inside ``root``, or raise SegmentFileMissing."""
    try:
        path = Storage(Path(root)).resolve_catalog_path(relative)
    except ValueError:
        logger.warning("refused catalog path %r: it leaves the storage root", relative)
        raise SegmentFileMissing(f"catalog path {relative!r} leaves the storage root") from None
    if not path.is_file():
        raise SegmentFileMissing(f"{relative} is not on disk")
    return path


# --- thumbnails -----------------------------------------------------------------------------

def thumbnail_path(root: str | Path, camera: str, segment_id: int) -> Path:
    """Return where the thumbnail of a segment is cached: <root>/.thumbs/<camera>/<id>.jpg."""
    # the hub's retention deletes it with the segment, so the layout lives in one place
    return Storage(Path(root)).thumbnail_path(camera, segment_id)


def render_thumbnail(source: Path, width: int = THUMB_WIDTH) -> bytes:
    """Return a JPEG, ``width`` px wide, of the first keyframe of the video file ``source``."""
    picture = _first_keyframe(source)
    height, original_width = picture.shape[:2]
    new_height = max(2, round(height * width / original_width / 2) * 2)
    small = cv2.resize(picture, (width, new_height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMB_JPEG_QUALITY])
    if not ok:
        raise ThumbnailFailed(f"cannot encode a JPEG of {source.name}")
    return encoded.tobytes()


def ensure_thumbnail(source: Path, target: Path, width: int = THUMB_WIDTH) -> Path:
    """Make the cached thumbnail ``target`` of ``source`` unless a fresh one exists; return it."""
    try:
        if target.stat().st_mtime >= source.stat().st_mtime:
            return target
    except FileNotFoundError:
        pass
    _write_atomically(target, render_thumbnail(source, width))
    return target


def _first_keyframe(source: Path):  # type: ignore[no-untyped-def]
    """Decode the first keyframe of a video file into a BGR array."""
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise ThumbnailFailed(f"{source.name} has no video")
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            for frame in container.decode(stream):
                return frame.to_ndarray(format="bgr24")
    except av.error.FFmpegError as exc:
        raise ThumbnailFailed(f"cannot decode {source.name}: {exc}") from None
    raise ThumbnailFailed(f"{source.name} holds no keyframe")


def _write_atomically(target: Path, data: bytes) -> None:
    # Two requests may make the same thumbnail at once: each writes its own file, one wins.
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".jpg")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# --- export ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportPart:
    """One segment file of an export, with the stream times (PTS seconds) to cut it at."""

    path: Path
    inpoint: float | None = None
    outpoint: float | None = None


@dataclass(frozen=True)
class ExportPlan:
    """What an export remuxes, and the wall-clock span of the footage it holds."""

    parts: list[ExportPart]
    start: dt.datetime
    end: dt.datetime
    location: str


def export_filename(camera: str, location: str, start: dt.datetime, end: dt.datetime) -> str:
    """Return ``<camera>_<location>_<start>_<end>.mp4`` with only [A-Za-z0-9_.-] in it."""
    parts = [camera, location, _stamp(start), _stamp(end)]
    safe = [_UNSAFE_FILENAME.sub("-", part).strip("-.") for part in parts]
    return "_".join(part or "unknown" for part in safe) + ".mp4"


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def plan_export(files: Sequence[tuple[SegmentRow, Path]], start: dt.datetime,
                end: dt.datetime) -> ExportPlan | None:
    """Plan the export of ``[start, end)`` from segment rows and their files (oldest first).

    The first file is cut at its last keyframe at or before ``start`` (a stream copy can only
    begin on a keyframe), the last at ``end``; gaps between files are left out. None when
    there is no file. The caller finds the files (each in its hub's storage, webapp.hub_storage).
    """
    if not files:
        return None
    (first, first_path), (last, last_path) = files[0], files[-1]
    plan_start, inpoint = first.start, None
    if start > first.start:
        keyframe = _keyframe_before(first_path, (start - first.start).total_seconds())
        if keyframe is not None:
            inpoint, offset = keyframe
            plan_start = first.start + dt.timedelta(seconds=offset)
    plan_end, outpoint = last.end, None
    last_first_pts = _first_pts(last_path) if end < last.end else None
    if last_first_pts is not None:
        outpoint = last_first_pts + (end - last.start).total_seconds()
        plan_end = end
    parts = [ExportPart(path) for _, path in files]
    parts[0] = ExportPart(parts[0].path, inpoint, parts[0].outpoint)
    parts[-1] = ExportPart(parts[-1].path, parts[-1].inpoint, outpoint)
    return ExportPlan(parts, plan_start, plan_end, first.location)


def _first_pts(path: Path) -> float | None:
    """Return the first video PTS of a file in seconds, or None if it cannot be read."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.pts is not None:
                    return float(packet.pts * stream.time_base)
    except (av.error.FFmpegError, IndexError) as exc:
        logger.warning("cannot read the first PTS of %s: %s", path.name, exc)
    return None


def _keyframe_before(path: Path, offset: float) -> tuple[float, float] | None:
    """Return (PTS, offset from the file's start) of the last keyframe at or before ``offset`` s."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = found = None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                pts = float(packet.pts * stream.time_base)
                first = pts if first is None else first
                if pts - first > offset:
                    break
                if packet.is_keyframe:
                    found = pts
    except (av.error.FFmpegError, IndexError) as exc:
        logger.warning("cannot read keyframes of %s: %s", path.name, exc)
        return None
    if found is None or first is None:
        return None
    return found, found - first


def concat_list(parts: Sequence[ExportPart]) -> str:
    """Return an ffconcat script that plays ``parts`` in order, cut at their in and out points."""
    lines = ["ffconcat version 1.0"]
    for part in parts:
        quoted = str(part.path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
        if part.inpoint is not None:
            lines.append(f"inpoint {part.inpoint:.6f}")
        if part.outpoint is not None:
            lines.append(f"outpoint {part.outpoint:.6f}")
    return "\n".join(lines) + "\n"


def remux_arguments(list_file: Path, output: Path) -> list[str]:
    """Return the ffmpeg command that stream-copies a concat list into a fast-start MP4."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-y",
            "-f", "concat", "-safe", "0", "-i", str(list_file),
            "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy",
            "-movflags", "+faststart", "-f", "mp4", str(output)]


def export_workdir(root: str | Path) -> Path:
    """Make a private temp folder for one export, under <root>/.exports (the footage's disk)."""
    base = Path(root).resolve() / EXPORTS_DIR
    try:
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale(base)
        return Path(tempfile.mkdtemp(prefix="export-", dir=base))
    except OSError as exc:
        logger.warning("cannot use %s for exports (%s); using the system temp folder", base, exc)
        return Path(tempfile.mkdtemp(prefix="nvr-export-"))


def _remove_stale(base: Path) -> None:
    cutoff = time.time() - STALE_EXPORT_SECONDS
    for entry in base.iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def remux(plan: ExportPlan, workdir: Path, timeout: float) -> Path:
    """Stream-copy the plan's parts into ``workdir``/export.mp4 with ffmpeg and return its path."""
    list_file = workdir / "parts.ffconcat"
    list_file.write_text(concat_list(plan.parts), encoding="utf-8")
    output = workdir / "export.mp4"
    return run_ffmpeg(remux_arguments(list_file, output), output, timeout)


def run_ffmpeg(command: list[str], output: Path, timeout: float) -> Path:
    """Run an export's ffmpeg ``command`` that writes ``output``; raise ExportFailed if it fails."""
    try:
        proc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout, check=False,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        raise ExportFailed(f"ffmpeg took longer than {timeout:.0f} s") from None
    stderr = collections.deque(proc.stderr.decode("utf-8", "replace").splitlines(),
                               maxlen=STDERR_LINES)
    if proc.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
        logger.error("export ffmpeg exited %d:\n%s", proc.returncode, "\n".join(stderr))
        raise ExportFailed(f"ffmpeg exited with status {proc.returncode}")
    if stderr:
        logger.info("export ffmpeg warnings:\n%s", "\n".join(stderr))
    return output
