"""Checks on recorded media and on the catalog, using PyAV and plain SQLite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import subprocess
from pathlib import Path

import av

from nvrlib.ffmpeg_bin import ffmpeg_exe


@dataclasses.dataclass(frozen=True)
class Row:
    """A catalog segment row as the tests see it."""

    id: int
    camera: str
    start: dt.datetime
    end: dt.datetime
    duration: float
    size_bytes: int
    path: str
    codec: str
    width: int
    height: int
    status: str
    recovered: bool
    backfilled: bool = False


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def segments(db_path: Path, camera: str | None = None) -> list[Row]:
    """Read the catalog's segment rows, ordered by camera and start time."""
    with sqlite3.connect(db_path, timeout=10) as conn:
        query = ("SELECT s.id, c.name, s.start_time, s.end_time, s.duration, s.size_bytes, s.path,"
                 " s.codec, s.width, s.height, s.status, s.recovered, s.backfilled FROM segments s"
                 " JOIN cameras c ON c.id = s.camera_id")
        params: tuple[str, ...] = ()
        if camera is not None:
            query += " WHERE c.name = ?"
            params = (camera,)
        rows = conn.execute(query + " ORDER BY c.name, s.start_time", params).fetchall()
    return [Row(r[0], r[1], _utc(r[2]), _utc(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                bool(r[11]), bool(r[12])) for r in rows]


@dataclasses.dataclass(frozen=True)
class Decoded:
    """What fully decoding a file gave."""

    frames: int
    errors: int
    first_pts: float
    end_pts: float
    duration: float
    container_duration: float | None
    width: int
    height: int


def decode_fully(path: Path) -> Decoded:
    """Decode every video frame of a file, counting decoder errors."""
    frames = errors = 0
    first = last = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                errors += 1
                continue
            for frame in decoded:
                frames += 1
                if frame.pts is not None:
                    first = frame.pts if first is None else min(first, frame.pts)
                    last = frame.pts if last is None else max(last, frame.pts)
        width, height = stream.codec_context.width, stream.codec_context.height
        cdur = container.duration / 1e6 if container.duration else None
    assert first is not None and last is not None, f"{path} has no frames"
    return Decoded(frames, errors, first * tb, last * tb + 1 / rate, (last - first) * tb + 1 / rate,
                   cdur, width, height)


def first_frame(path: Path):
    """Return the first decoded frame of a file as a BGR numpy array."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="bgr24")
    raise AssertionError(f"{path} has no frame")


def encoded_ts(seconds: float, size: str = "320x240", rate: int = 25) -> bytes:
    """Real H.264 in MPEG-TS, as an encoder would send it (bundled ffmpeg, test pattern)."""
    argv = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
            "-i", f"testsrc2=size={size}:rate={rate}", "-t", f"{seconds:g}", "-c:v", "libx264",
            "-g", str(rate), "-pix_fmt", "yuv420p", "-f", "mpegts", "pipe:1"]
    return subprocess.run(argv, check=True, capture_output=True, timeout=60).stdout


def http_chunk(data: bytes) -> bytes:
    """Encode one HTTP/1.1 chunk of a chunked request body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def ffmpeg_complaints(path: Path) -> str:
    """What `ffmpeg -v error -i FILE -f null -` prints: empty for a file that decodes cleanly.

    The null muxer's own complaint about equal output timestamps is left out: it writes decoded
    frames in a 1/fps time base, so two frames a capture clock took 29 ms apart at 10 fps land on
    one tick. That is the check's output, not a decoding error (nothing is wrong with the file).
    """
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
            "-f", "null", "-"]
    stderr = subprocess.run(argv, capture_output=True, text=True, timeout=60).stderr
    return "\n".join(line for line in stderr.strip().splitlines()
                     if not (line.startswith("[null @") and "non monotonically increasing dts"
                             in line))


def pyav_complaints(path: Path) -> list[str]:
    """PyAV's error messages, corrupt packets and corrupt frames over every A/V packet."""
    import av.logging

    complaints: list[str] = []
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        # not local: frame-threaded decoders log from their worker threads
        with av.logging.Capture(False) as logs, av.open(str(path)) as container:
            for packet in container.demux([s for s in container.streams
                                           if s.type in ("video", "audio")]):
                if packet.is_corrupt:
                    complaints.append(f"corrupt packet at byte {packet.pos}")
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    complaints.append(f"{exc} at byte {packet.pos}")
                    continue
                complaints += [f"corrupt frame pts {f.pts}" for f in frames if f.is_corrupt]
            complaints += [message.strip() for _, _, message in logs]
    finally:
        av.logging.set_level(previous)
    return complaints
