"""Read a segment file with PyAV: its video codec, size, PTS range and decodability."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import av

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What a segment file holds."""

    codec: str
    width: int
    height: int
    first_pts: float  # seconds, the stream's own clock
    end_pts: float  # last frame's PTS plus its duration
    frames: int
    decoded_frames: int
    audio_codec: str = ""  # the first audio stream's codec ("" when the file has no sound)

    @property
    def duration(self) -> float:
        """Seconds of video in the file."""
        return max(self.end_pts - self.first_pts, 0.0)


class ProbeError(Exception):
    """The file cannot be read as video at all."""


HEAD_PACKETS = 30  # enough to see the lowest PTS of a GOP that starts with reordered frames


def probe(path: Path, decode: bool = False, head_only: bool = False) -> ProbeResult:
    """Demux (and with ``decode`` also decode) a segment; raise ProbeError if unreadable.

    ``head_only`` reads just the first packets: enough for the first PTS and the codec,
    and cheap, which matters because every run's first segment is probed live.
    """
    try:
        with av.open(str(path), "r") as container:
            if not container.streams.video:
                raise ProbeError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            result = _scan(container, stream, decode, HEAD_PACKETS if head_only else None)
            audio = container.streams.audio
            return dataclasses.replace(result, audio_codec=audio[0].codec_context.name
                                       if audio else "")
    except (av.error.FFmpegError, OSError) as exc:
        raise ProbeError(f"{path.name}: {exc}") from None


def _scan(container: av.container.InputContainer, stream: av.VideoStream, decode: bool,
          limit: int | None) -> ProbeResult:
    tb = float(stream.time_base)
    first = last = None
    last_duration = 0.0
    frames = decoded = 0
    for packet in container.demux(stream):
        if packet.pts is None:
            continue  # the flush packet at the end of the file
        frames += 1
        first = packet.pts if first is None else min(first, packet.pts)
        if last is None or packet.pts >= last:
            last, last_duration = packet.pts, (packet.duration or 0) * tb
        if decode:
            decoded += _decode(packet)
        if limit is not None and frames >= limit:
            break
    if first is None or last is None:
        raise ProbeError("no video packets")
    if not last_duration:
        rate = stream.average_rate or stream.guessed_rate
        last_duration = 1 / float(rate) if rate else 0.0
    ctx = stream.codec_context
    return ProbeResult(ctx.name, ctx.width, ctx.height, first * tb, last * tb + last_duration,
                       frames, decoded)


def _decode(packet: av.Packet) -> int:
    try:
        return len(packet.decode())
    except av.error.FFmpegError:
        return 0
