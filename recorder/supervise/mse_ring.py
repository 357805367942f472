"""The live tap's fragmented MP4, written as a small ring of files the web app tails.

ffmpeg's fMP4 output (one frame per fragment) is split into boxes on the hub's event loop and
handed to one writer thread per tap through a bounded queue: a slow disk loses live frames
(the ring starts again at the next keyframe), never time on the loop that relays recording.
The layout is nvrlib.fmp4's: an init segment, one file per group of pictures, and ``mse.head``
naming the newest group.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
from pathlib import Path

from nvrlib import fmp4

logger = logging.getLogger(__name__)

QUEUE_BOXES = 2048  # ~16 s of one-frame fragments (moof + mdat) at 15 fps with 48-kHz AAC


class MseRing:
    """Writes one tap run's init segment and groups of pictures, off the event loop."""

    def __init__(self, live_dir: Path, tap: str) -> None:
        self.live_dir, self.tap = live_dir, tap
        self._boxes: queue.Queue[bytes | None] = queue.Queue(QUEUE_BOXES)
        self._lost = False  # boxes were dropped: wait for the next keyframe
        self._thread = threading.Thread(target=self._write_all, name=f"mse-{tap}", daemon=True)
        self._init: list[bytes] = []
        self._video_track: int | None = None  # keyframes are looked for on this track only
        self._moof: bytes | None = None
        self._group: int = 0
        self._file: io.FileIO | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def put(self, box: bytes) -> None:
        """Queue one top-level box of ffmpeg's output; drop it if the writer is behind."""
        try:
            self._boxes.put_nowait(box)
        except queue.Full:
            self._lost = True

    def close(self, timeout: float = 1.0) -> None:
        """Stop the writer thread (it finishes what is queued, bounded by ``timeout``)."""
        if not self._thread.is_alive():
            return
        try:
            self._boxes.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _write_all(self) -> None:
        try:
            while (box := self._boxes.get()) is not None:
                self._write_box(box)
        except OSError as exc:  # the live view stops; recording goes on
            logger.warning("live view of %s: cannot write %s: %s", self.live_dir.name,
                           self.live_dir, exc)
        finally:
            self._close_group()

    def _write_box(self, box: bytes) -> None:
        kind = fmp4.box_type(box)
        if kind in (b"ftyp", b"moov"):
            self._init.append(box)
            if kind == b"moov":
                init = b"".join(self._init)
                self._video_track = fmp4.video_track_id(init)
                self._replace(fmp4.init_name(self.tap), init)
        elif kind == b"moof":
            self._moof = box
        elif kind == b"mdat" and self._moof is not None:
            self._write_fragment(self._moof + box)
            self._moof = None

    def _write_fragment(self, fragment: bytes) -> None:
        if fmp4.starts_with_keyframe(fragment, self._video_track):
            self._lost = False
            self._start_group(fragment)
        elif self._file is not None and not self._lost:
            self._file.write(fragment)
        # else: before the first keyframe, or after a loss: nothing a viewer could decode

    def _start_group(self, fragment: bytes) -> None:
        self._close_group()
        self._group += 1
        self._file = io.FileIO(self.live_dir / fmp4.group_name(self.tap, self._group), "wb")
        self._file.write(fragment)
        self._replace(fmp4.HEAD, fmp4.head_text(self.tap, self._group).encode())
        old = self._group - fmp4.GROUPS_KEPT
        if old >= 1:
            (self.live_dir / fmp4.group_name(self.tap, old)).unlink(missing_ok=True)

    def _close_group(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _replace(self, name: str, data: bytes) -> None:
        temporary = self.live_dir / f"{name}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.live_dir / name)
