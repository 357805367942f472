"""A pushed camera whose every frame shows the wall-clock time it was made, as blocks a test reads.

Each frame is grey 320x240: in its top 320x180, 32 blocks (8 across, 4 down, 40x45 pixels) spell
the low 32 bits of the Unix time in milliseconds, most significant bit first, white for 1 and
black for 0; the 60 rows below are fresh noise, so the stream has a camera's bitrate (about
2 Mbit/s) and a stalled viewer really fills the buffers between it and the server. H.264 keeps
blocks that large intact, so a viewer reads the time back from the decoded picture (a
browser from a canvas, `CLOCK_JS`; Python with `read_clock`) and subtracts it from its own
clock: glass-to-glass delay on one machine, no clocks to align.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from urllib.parse import urlsplit

import numpy as np

from edge.direct_uplink import DirectConnection
from edge.errors import HubError
from edge.uplink import HubAddress
from nvrlib.ffmpeg_bin import ffmpeg_exe

WIDTH, HEIGHT = 320, 180  # the clock's part of the frame
NOISE_ROWS = 60
COLUMNS, ROWS = 8, 4
BLOCK_W, BLOCK_H = WIDTH // COLUMNS, HEIGHT // ROWS
BITS = COLUMNS * ROWS
MODULO = 1 << BITS

# Read the clock from a <video>: draw it on a canvas, sample each block's centre.
CLOCK_JS = """(video) => {
  const w = 320, h = 180, cols = 8, rows = 4;
  if (video.videoWidth !== w) { return null; }
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0);
  const now = Date.now();
  const px = ctx.getImageData(0, 0, w, h).data;
  let value = 0;
  for (let i = 0; i < cols * rows; i++) {
    const x = (i % cols) * (w / cols) + w / cols / 2, y = Math.floor(i / cols) * (h / rows) + h / rows / 2;
    const bit = px[(Math.floor(y) * w + Math.floor(x)) * 4] > 128 ? 1 : 0;
    value = value * 2 + bit;
  }
  return {shown: value, now: now};
}"""


def clock_frame(millis: int, noise: np.random.Generator) -> bytes:
    """Return one grey frame spelling ``millis`` (mod 2^32) in blocks, over a band of noise."""
    bits = np.array([(millis % MODULO) >> (BITS - 1 - i) & 1 for i in range(BITS)], np.uint8)
    blocks = (bits.reshape(ROWS, COLUMNS) * 255).astype(np.uint8)
    clock = np.kron(blocks, np.ones((BLOCK_H, BLOCK_W), np.uint8))
    band = noise.integers(0, 256, (NOISE_ROWS, WIDTH), dtype=np.uint8)
    return np.vstack([clock, band]).tobytes()


def read_clock(gray: np.ndarray) -> int:
    """Return the milliseconds (mod 2^32) a decoded grey frame (320 wide, 240 high) spells."""
    value = 0
    for i in range(BITS):
        y = (i // COLUMNS) * BLOCK_H + BLOCK_H // 2
        x = (i % COLUMNS) * BLOCK_W + BLOCK_W // 2
        value = value * 2 + int(gray[y, x] > 128)
    return value


def delay_ms(shown: int, now_ms: int) -> int:
    """Return how long ago (ms) a frame spelling ``shown`` was made, at ``now_ms``."""
    return (now_ms - shown) % MODULO


class ClockPusher:
    """ffmpeg encoding clock frames made in real time (15 fps) and pushing them to a hub URL."""

    def __init__(self, url: str, fps: int = 15, exe: str | None = None,
                 sound: bool = False, direct: bool = False) -> None:
        self.url, self.fps, self.sound = url, fps, sound
        # with ``direct``, ffmpeg writes to a pipe and the edge's own version-3 client
        # (edge/direct_uplink.py) sends it on, in batches, or at once while it is watched
        self.direct = direct
        # with ``sound``, a 440-Hz tone made in real time goes along as AAC (ADTS in MPEG-TS,
        # as a camera's own encoder sends it)
        tone = (["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
                if sound else [])
        # -pes_payload_size: a PES per AAC frame or two, as a camera's RTP would bring them;
        # ffmpeg's default gathers ~0.4 s of sound per PES, which a live view waits for
        audio = (["-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "64k",
                  "-pes_payload_size", "256"] if sound else [])
        argv = [exe or ffmpeg_exe(), "-hide_banner", "-loglevel", "warning",
                "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT + NOISE_ROWS}",
                "-framerate", str(fps), "-use_wallclock_as_timestamps", "1", "-i", "pipe:0",
                *tone, *audio,
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-g", str(fps), "-pix_fmt", "yuv420p", "-fps_mode", "passthrough",
                "-flush_packets", "1", "-f", "mpegts", "pipe:1" if direct else url]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE if direct else subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="clock-pusher", daemon=True)
        self._thread.start()
        self._sender: threading.Thread | None = None
        if direct:
            self._sender = threading.Thread(target=self._send_direct, name="clock-direct",
                                            daemon=True)
            self._sender.start()

    def _send_direct(self) -> None:
        """Send ffmpeg's MPEG-TS to the hub with protocol version 3, reconnecting if it ends."""
        assert self.proc.stdout is not None
        parts = urlsplit(self.url)
        hub = HubAddress(parts.hostname or "127.0.0.1", parts.port or 80)
        camera = parts.path.rsplit("/", 1)[-1]
        fd = self.proc.stdout.fileno()
        while not self._stop.is_set():
            try:
                # ffmpeg's timestamps are the wall clock's, shifted to start near 0
                with DirectConnection(hub, camera, time.time()) as conn:
                    while data := os.read(fd, 65536):
                        conn.send(data)
                    conn.finish()
                    return
            except HubError:
                self._stop.wait(0.5)  # the hub restarted the recorder: a new request

    def _feed(self) -> None:
        assert self.proc.stdin is not None
        period, due = 1.0 / self.fps, time.monotonic()
        noise = np.random.default_rng()
        while not self._stop.is_set():
            try:
                self.proc.stdin.write(clock_frame(int(time.time() * 1000), noise))
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            due += period
            self._stop.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        """Stop feeding and end ffmpeg (it finishes its push)."""
        self._stop.set()
        self._thread.join(5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.sound:  # the tone never ends by itself; SIGTERM and ffmpeg still ends its push
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._sender is not None:
            self._sender.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ClockPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
