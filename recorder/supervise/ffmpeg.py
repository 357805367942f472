"""ffmpeg command lines for the segmenter, and a stderr ring buffer with credentials masked."""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path

from nvrlib.ffmpeg_bin import ffmpeg_exe
from nvrlib.redact import redact

STDERR_LINES = 100

# A pulled camera's URL reaches ffmpeg on a pipe, as the one entry of an ffconcat list, never
# in its argument list: /proc/PID/cmdline is readable by every local user, the pipe only by
# the hub's user (/proc/PID/fd). The concat demuxer's "option" lines carry the RTSP input
# options; this works with ffmpeg 5.1 and 9.x alike (7.1's "-/i FILE" is not in 5.1). The
# list is never on disk, so nothing is left behind when the stream stops or the hub dies.
PULL_PROTOCOLS = "pipe,rtsp,rtsps,rtp,srtp,tcp,tls,udp,crypto"
# TCP interleaving survives lossy Wi-Fi and NAT; timeout (µs) makes a camera that goes
# silent end the process, so the supervisor reconnects.
PULL_INPUT_OPTIONS = (("rtsp_transport", "tcp"), ("timeout", "10000000"))
_MAX_LIST_BYTES = 4096  # at most PIPE_BUF: written whole before ffmpeg reads, never blocking


class UnsafeUrl(ValueError):
    """A camera URL that cannot be handed to ffmpeg (control characters, too long)."""


def _ffconcat_quoted(text: str) -> str:
    # av_get_token: nothing is special inside '...'; a quote is closed, escaped, reopened
    return "'" + text.replace("'", "'\\''") + "'"


def hidden_input_list(url: str) -> bytes:
    """Return the ffconcat list that opens ``url`` with the pull input options."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeUrl("the camera URL contains control characters")
    lines = ["ffconcat version 1.0", f"file {_ffconcat_quoted(url)}",
             *(f"option {name} {_ffconcat_quoted(value)}" for name, value in PULL_INPUT_OPTIONS)]
    data = ("\n".join(lines) + "\n").encode()
    if len(data) > _MAX_LIST_BYTES:
        raise UnsafeUrl("the camera URL is too long")
    return data


def open_hidden_input(url: str) -> int:
    """Return the read end of a pipe holding ``url``'s ffconcat list (the caller closes it)."""
    data = hidden_input_list(url)
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # ffmpeg reads the list to its end at once
    return read_fd


def hidden_input_args(input_fd: int) -> list[str]:
    """Return ffmpeg's input options that read a camera from ``open_hidden_input``'s pipe."""
    # -safe 0: the list names a URL, not a file beside it; the whitelist is what RTSP needs
    return ["-f", "concat", "-safe", "0", "-protocol_whitelist", PULL_PROTOCOLS,
            "-i", f"pipe:{input_fd}"]


def incoming_pattern(incoming_dir: Path, run_id: str) -> Path:
    """Return ffmpeg's output pattern for a run: one numbered file per segment."""
    return incoming_dir / f"{run_id}-%06d.ts"


def _progress(progress_fd: int | None) -> list[str]:
    # ffmpeg's own frame and byte counters, every 2 s, for the status the web app shows
    if progress_fd is None:
        return []
    # the counters feed the 3-s status (fps and bitrate over a 10-s window). Not less often:
    # with -stats_period 4, ffmpeg 5.1 left the open segment on disk seconds behind
    # (tests/e2e/test_postgres.py found no half-written segment), which a crash would lose
    return ["-progress", f"pipe:{progress_fd}", "-stats_period", "2"]


def _segment_output(pattern: Path, segment_seconds: float, list_fd: int,
                    pts_offset: float = 0.0, flush_each_frame: bool = False) -> list[str]:
    # -copyts keeps the stream's own PTS, so a segment's times map back to wall-clock time;
    # muxdelay/muxpreload 0 keep the files' PTS equal to the listed ones. MPEG-TS survives
    # truncation, so a segment cut short by a crash still plays up to its last packet.
    # -output_ts_offset -X moves a stream that is already X s in back near 0: ffmpeg 5.1's
    # segment muxer counts its cuts from PTS 0 in every new process, and would otherwise cut
    # at every keyframe until its count caught up (recording.md, "Rotate").
    shift = ["-output_ts_offset", f"{-pts_offset:.3f}"] if pts_offset else []
    # each frame reaches the open file at once, not in 256-KiB writes (a second or more of a
    # camera): a version-3 stream's live view reads it there (live.DirectFeed). The segment
    # muxer's own -flush_packets does not reach the files' muxer; this does.
    flush = ["-segment_format_options", "flush_packets=1"] if flush_each_frame else []
    return [
        "-map", "0:v:0", "-map", "0:a?", "-c", "copy",
        "-copyts", *shift, "-muxdelay", "0", "-muxpreload", "0",
        "-f", "segment",
        "-segment_time", f"{segment_seconds:g}",
        # a keyframe a hair before the boundary (capture-clock jitter) still cuts there,
        # instead of one GOP later (3 s / 1 s segments instead of 2 s / 2 s)
        "-segment_time_delta", "0.1",
        "-segment_format", "mpegts", *flush,
        "-segment_list", f"pipe:{list_fd}",
        "-segment_list_type", "csv",
        str(pattern),
    ]


LIVE_PLAYLIST = "live.m3u8"
LIVE_SEGMENT_SECONDS = 1
LIVE_LIST_SIZE = 5


# How the live view carries a camera's sound: MSE and hls.js play AAC, so AAC is copied and
# anything else (G.711 from an RTSP camera, MP2 from a stock pusher) becomes AAC, at ~2 % of a
# core while someone watches; "none" when the camera's footage shows it has no sound. The
# input's first audio stream, if it has one ("?").
LIVE_AUDIO_MODES = ("none", "copy", "encode")
LIVE_AUDIO_BITRATE = "64k"


def _live_audio(mode: str, into_mp4: bool) -> list[str]:
    if mode not in LIVE_AUDIO_MODES:
        raise ValueError(f"live audio mode {mode!r} is not one of {LIVE_AUDIO_MODES}")
    if mode == "none":
        return []
    if mode == "encode":
        return ["-map", "0:a:0?", "-c:a", "aac", "-b:a", LIVE_AUDIO_BITRATE]
    # MPEG-TS carries AAC as ADTS; MP4 wants it bare (ffmpeg stops muxing without the filter)
    return ["-map", "0:a:0?", "-c:a", "copy", *(["-bsf:a", "aac_adtstoasc"] if into_mp4 else [])]


def live_output(live_dir: Path, prefix: str, audio: str = "none") -> list[str]:
    """Output options of a rolling HLS of ~1 s pieces (cut on keyframes) for the live view."""
    return [
        "-map", "0:v:0", *_live_audio(audio, into_mp4=False), "-c:v", "copy",
        "-muxdelay", "0", "-muxpreload", "0",
        "-f", "hls", "-hls_time", str(LIVE_SEGMENT_SECONDS), "-hls_list_size", str(LIVE_LIST_SIZE),
        "-hls_flags", "delete_segments+omit_endlist+temp_file",
        "-hls_segment_filename", str(live_dir / f"{prefix}-%d.ts"),
        str(live_dir / LIVE_PLAYLIST),
    ]


def live_fmp4_output(audio: str = "none") -> list[str]:
    """Output options of the live view's fragmented MP4 on stdout: one frame per fragment."""
    # Picture only: a fragment per frame, written as the frame comes. With sound, ffmpeg's
    # frag_every_frame writes some frames with a duration of 0 (5.1 and 9 alike), and Chromium
    # then buffers the picture a group of pictures at a time (a sawtooth of 0.3-1.2 s of
    # delay); a fragment cut at every packet of either track (frag_duration of 1 us) keeps every
    # duration, and waits at most for the next sound packet (~21 ms at 48 kHz).
    cut = (["-movflags", f"{LIVE_MOVFLAGS}+frag_every_frame"] if audio == "none"
           else ["-movflags", LIVE_MOVFLAGS, "-frag_duration", "1"])
    return [
        "-map", "0:v:0", *_live_audio(audio, into_mp4=True), "-c:v", "copy", "-f", "mp4",
        *cut,
        "-flush_packets", "1",  # each fragment leaves at once, not when a 32-KiB buffer fills
        "pipe:1",
    ]


# delay_moov: the init segment waits for the first packet, whose AAC configuration (made from
# ADTS by the filter) must be in it: browsers refuse an init without it
LIVE_MOVFLAGS = "empty_moov+delay_moov+default_base_moof+skip_trailer"


def live_audio_mode(audio_codec: str | None, pulled: bool) -> str:
    """Pick how the live view carries sound from the codec the camera's footage showed.

    A pulled camera's footage may hide its sound (G.711 goes into MPEG-TS as private data), so
    its tap looks for sound itself unless the footage showed AAC.
    """
    if audio_codec == "aac":
        return "copy"
    if audio_codec == "" and not pulled:
        return "none"
    return "encode"


def _common_head() -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info"]


def push_segmenter_argv(pattern: Path, segment_seconds: float, list_fd: int,
                        progress_fd: int | None = None, pts_offset: float = 0.0,
                        flush_each_frame: bool = False) -> list[str]:
    """Build the argv of a segmenter fed MPEG-TS on its stdin (by the hub, or a version-3
    edge's socket: ``flush_each_frame`` then, for its live view).

    ``pts_offset`` (seconds, >= 0, whole milliseconds) is subtracted from every timestamp.
    """
    return [
        *_common_head(), *_progress(progress_fd),
        "-f", "mpegts", "-i", "pipe:0",
        *_segment_output(pattern, segment_seconds, list_fd, pts_offset, flush_each_frame),
    ]


def pull_segmenter_argv(input_fd: int, pattern: Path, segment_seconds: float, list_fd: int,
                        progress_fd: int | None = None) -> list[str]:
    """Build the argv of a segmenter that pulls an RTSP camera itself.

    ``input_fd`` is ``open_hidden_input(url)``: the URL is not in the argv.
    """
    return [
        *_common_head(), *_progress(progress_fd), "-nostdin", *hidden_input_args(input_fd),
        *_segment_output(pattern, segment_seconds, list_fd),
    ]


def with_parent_death_signal(argv: list[str], fed_by_hub: bool = False,
                             direct: bool = False) -> list[str]:
    """Prefix argv so the child gets SIGTERM if the hub dies (Linux setpriv).

    An ffmpeg the hub feeds on stdin needs no signal: when the hub dies its stdin ends, and
    ffmpeg finishes the open segment with everything it was given. A death signal would do
    harm there: Linux sends it again each time the child passes to another of the dying
    hub's threads, and at its second signal ffmpeg aborts its writes and loses what it had
    buffered (often the whole open segment). Pulled cameras read the network, which never
    ends by itself, so they keep the signal. So does a ``direct`` (version-3) ffmpeg, which
    reads the edge's socket: it gets SIGKILL, since a SIGTERM would wait for the edge's next
    bytes; its open segment stays in .incoming, and the next start cuts it back to its last
    whole frame (recording.md, "Cut a torn segment back").
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or (fed_by_hub and not direct):
        return argv
    return [setpriv, "--pdeathsig", "KILL" if direct else "TERM", "--", *argv]


class StderrRing:
    """The last lines ffmpeg printed, scrubbed of credentials, for logs and the UI."""

    def __init__(self, size: int = STDERR_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=size)

    def add(self, line: str) -> None:
        """Remember one line of ffmpeg's stderr."""
        # ffmpeg names its input in errors ("Impossible to open 'rtsp://u:pw@...'")
        self._lines.append(redact(line.rstrip()))

    def tail(self, count: int = 20) -> list[str]:
        """Return the last ``count`` lines."""
        return list(self._lines)[-count:]


def parse_segment_list_line(line: str) -> tuple[str, float, float] | None:
    """Parse one CSV line of ffmpeg's segment list: file name, start and end PTS seconds."""
    parts = line.strip().rsplit(",", 2)
    if len(parts) != 3:
        return None
    name, start, end = parts
    try:
        return name.strip('"'), float(start), float(end)
    except ValueError:
        return None


def parse_progress_line(line: str) -> tuple[str, str] | None:
    """Split one `key=value` line of ffmpeg's -progress output."""
    key, sep, value = line.strip().partition("=")
    return (key, value.strip()) if sep else None
