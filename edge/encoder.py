"""H.264 (libx264 via PyAV) in MPEG-TS, timed by the capture clock, into memory."""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction

import av
import cv2
import numpy as np
from av.video.frame import PictureType

logger = logging.getLogger(__name__)

TICKS_PER_SECOND = 90_000  # MPEG-TS clock
TS_PACKET = 188
SYNC_BYTE = 0x47
TIME_BASE = Fraction(1, TICKS_PER_SECOND)
# A small I/O buffer plus flush_packets hands every frame's TS packets over at once, so the
# uplink sends one chunk per frame instead of waiting for 32 KiB to pile up.
IO_BUFFER_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class EncoderSettings:
    """What the edge encodes: size, rate, bitrate and libx264's tuning."""

    width: int = 1280
    height: int = 720
    fps: float = 15.0
    bitrate: int = 2_000_000
    preset: str = "veryfast"
    tune: str = "zerolatency"
    keyframe_seconds: float = 1.0
    threads: int = 0  # 0: libx264 picks per core count

    @property
    def gop(self) -> int:
        """Return the keyframe interval in frames (one second's worth)."""
        return max(1, round(self.fps * self.keyframe_seconds))


def codec_options(settings: EncoderSettings) -> dict[str, str]:
    """Return libx264's private options, named as ffmpeg's command line names them."""
    return {
        "preset": settings.preset,
        "tune": settings.tune,
        # Regular keyframes only (no extra ones on scene cuts), and forced ones are IDRs, so
        # a segment can start at any of them.
        "x264-params": "scenecut=0",
        "forced-idr": "1",
    }


def pts_for(capture_monotonic: float, start_monotonic: float) -> int:
    """Return a frame's 90 kHz PTS from its capture time relative to the stream start."""
    return round((capture_monotonic - start_monotonic) * TICKS_PER_SECOND)


def to_video_frame(image_bgr: np.ndarray) -> av.VideoFrame:
    """Convert a BGR image to a yuv420p av.VideoFrame whose planes point into OpenCV's I420."""
    # OpenCV's converter is much faster than handing BGR to PyAV's (swscale) path, and
    # from_numpy_buffer wraps the Y, U and V planes of the one I420 array without a copy.
    i420 = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YUV_I420)
    return av.VideoFrame.from_numpy_buffer(i420, format="yuv420p")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """The TS bytes one frame made, with its PTS (90 kHz ticks) and whether a stream may start
    at it (``keyframe``: an IDR whose bytes begin with a PAT and PMT, see ``starts_with_pat``)."""

    data: bytes
    pts: int
    keyframe: bool


def starts_with_pat(data: bytes) -> bool:
    """Tell whether a PAT packet comes before the first PES in these TS bytes.

    A demuxer ignores every PES until it has read a PAT and its PMT, so a request or a spool
    file must start at a keyframe that brings them along. ffmpeg's MPEG-TS muxer writes them
    before a keyframe, except when the packet before was a keyframe too.
    """
    for pos in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        packet = data[pos:pos + TS_PACKET]
        if packet[0] != SYNC_BYTE:
            return False
        if (packet[1] & 0x1F) << 8 | packet[2] == 0:
            return True
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40 and packet[payload:payload + 3] == b"\x00\x00\x01":
            return False  # a PES starts before any PAT
    return False


class _Buffer:
    """A write-only file object that collects what the muxer writes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        """Keep a piece the muxer wrote."""
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        """Return everything written since the last take, and forget it."""
        data, self._parts = b"".join(self._parts), []
        return data


class Encoder:
    """One H.264 MPEG-TS stream: the first bytes are PAT/PMT and a keyframe."""

    def __init__(self, settings: EncoderSettings, start_monotonic: float) -> None:
        self.settings = settings
        self.start_monotonic = start_monotonic
        self._last_pts = -1
        self._last_key_pts: int | None = None
        self._force_key = False
        self._last_was_key = False
        self._muxed_pts: int | None = None
        self._muxed_key = False
        self._buffer = _Buffer()
        self._container = av.open(
            self._buffer, mode="w", format="mpegts", buffer_size=IO_BUFFER_SIZE,
            # mpegts_copyts: write our PTS verbatim (no mux-delay offset), so PTS 0 is the
            # instant X-NVR-Stream-Epoch names.
            container_options={"mpegts_copyts": "1", "flush_packets": "1"},
        )
        self._stream = self._add_stream(settings)
        self._closed = False

    def _add_stream(self, settings: EncoderSettings) -> av.VideoStream:
        stream = self._container.add_stream(
            "libx264", rate=Fraction(settings.fps).limit_denominator(1001)
        )
        stream.width, stream.height, stream.pix_fmt = settings.width, settings.height, "yuv420p"
        stream.time_base = TIME_BASE
        ctx = stream.codec_context
        ctx.time_base = TIME_BASE
        ctx.bit_rate = settings.bitrate
        ctx.gop_size = settings.gop
        ctx.max_b_frames = 0
        ctx.thread_count = settings.threads
        ctx.options = codec_options(settings)
        return stream

    def encode(self, image_bgr: np.ndarray, capture_monotonic: float) -> bytes:
        """Encode one BGR frame captured at ``capture_monotonic``; return the TS bytes made."""
        return self.encode_chunk(image_bgr, capture_monotonic).data

    def encode_chunk(self, image_bgr: np.ndarray, capture_monotonic: float) -> Chunk:
        """Encode one frame; return its TS bytes with their PTS and keyframe flag."""
        frame = to_video_frame(image_bgr)
        pts = self.next_pts(capture_monotonic)
        frame.pts, frame.time_base = pts, TIME_BASE
        # Not right after a keyframe: the muxer would write no PAT/PMT before this one.
        forced = self._force_key and not self._last_was_key
        if forced or self._keyframe_due(pts):
            frame.pict_type = PictureType.I  # an IDR (forced-idr): a request may start here
            self._force_key = False
        self._muxed_pts, self._muxed_key = None, False
        self._mux(self._stream.encode(frame))
        self._last_was_key = self._muxed_key
        # zerolatency and no B-frames: the packet made is this frame's (same PTS).
        made_pts = pts if self._muxed_pts is None else self._muxed_pts
        data = self._buffer.take()
        return Chunk(data, made_pts, self._muxed_key and starts_with_pat(data))

    def force_keyframe(self) -> None:
        """Make the next frame a keyframe (IDR), e.g. where a new live request starts."""
        self._force_key = True

    @property
    def last_pts(self) -> int:
        """Return the PTS of the last frame encoded (-1 before the first)."""
        return self._last_pts

    def next_pts(self, capture_monotonic: float) -> int:
        """Return the PTS for a frame, bumped past the previous one so PTS strictly increase."""
        pts = max(pts_for(capture_monotonic, self.start_monotonic), self._last_pts + 1)
        self._last_pts = pts
        return pts

    def finish(self) -> bytes:
        """Flush the encoder and close the stream; return the last TS bytes."""
        if not self._closed:
            self._mux(self._stream.encode(None))
            self._close()
        return self._buffer.take()

    def close(self) -> None:
        """Release the encoder without flushing (the connection is gone anyway)."""
        if not self._closed:
            self._close()

    def _close(self) -> None:
        self._closed = True
        self._container.close()

    def _keyframe_due(self, pts: int) -> bool:
        # libx264's own GOP counts frames; this counts capture time, so a camera running
        # slower than --fps still gets a keyframe every keyframe_seconds.
        interval = self.settings.keyframe_seconds * TICKS_PER_SECOND
        return self._last_key_pts is not None and pts - self._last_key_pts >= interval

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if packet.is_keyframe:
                self._last_key_pts = packet.pts
                self._muxed_key = True
            if self._muxed_pts is None:
                self._muxed_pts = packet.pts
            self._container.mux(packet)
