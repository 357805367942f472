"""The live fMP4 path without a hub: ffmpeg's fragments filed by the hub's ring, shared by viewers.

Real ffmpeg output (one frame per fragment, a keyframe every 5 frames) goes through the hub's
writer (recorder.supervise.mse_ring) into a live folder; the web app's feed (webapp.live.stream)
tails it. A new viewer starts at the newest keyframe, every viewer gets the same frames, and one
that does not keep up skips to the newest keyframe instead of getting old frames.
"""

from __future__ import annotations

import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nvrlib import fmp4
from nvrlib.ffmpeg_bin import ffmpeg_exe
from recorder.supervise import ffmpeg as hub_ffmpeg
from recorder.supervise.mse_ring import MseRing
from tests.support.procs import wait_for
from webapp.live import stream

CAMERA = "porch"
GOP = 5


@pytest.fixture(scope="module")
def boxes() -> list[bytes]:
    """ffmpeg's fMP4 of 30 frames (6 groups of pictures), split into top-level boxes."""
    encode = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
              "-i", "testsrc2=size=160x90:rate=15", "-t", "2", "-c:v", "libx264",
              "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(GOP),
              "-pix_fmt", "yuv420p", "-f", "mpegts", "pipe:1"]
    ts = subprocess.run(encode, capture_output=True, check=True, timeout=60).stdout
    remux = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0",
             *hub_ffmpeg.live_fmp4_output()]
    out = subprocess.run(remux, input=ts, capture_output=True, check=True, timeout=60).stdout
    split, rest = fmp4.split_boxes(out)
    assert rest == b""
    return split


def fragments_of(boxes: list[bytes]) -> list[bytes]:
    """moof + mdat pairs, in order."""
    return [boxes[i] + boxes[i + 1] for i in range(2, len(boxes), 2)]


def test_keyframes_are_found_in_ffmpegs_fragments(boxes: list[bytes]) -> None:
    kinds = [fmp4.box_type(b) for b in boxes]
    assert kinds[:2] == [b"ftyp", b"moov"] and set(kinds[2:]) == {b"moof", b"mdat"}
    keyframes = [fmp4.starts_with_keyframe(f) for f in fragments_of(boxes)]
    assert keyframes == [i % GOP == 0 for i in range(len(keyframes))]


def remux_with_sound(sound: str, container: str, mode: str) -> list[bytes]:
    """ffmpeg's live fMP4 of 2 s of a camera with a tone in ``sound`` (one of its encoders)."""
    encode = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
              "-i", "testsrc2=size=160x90:rate=15", "-f", "lavfi",
              "-i", "sine=frequency=440:sample_rate=8000", "-t", "2", "-c:v", "libx264",
              "-preset", "ultrafast", "-g", str(GOP), "-pix_fmt", "yuv420p",
              "-c:a", sound, "-f", container, "pipe:1"]
    source = subprocess.run(encode, capture_output=True, check=True, timeout=60).stdout
    remux = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", container,
             "-i", "pipe:0", *hub_ffmpeg.live_fmp4_output(mode)]
    out = subprocess.run(remux, input=source, capture_output=True, check=True, timeout=60).stdout
    split, rest = fmp4.split_boxes(out)
    assert rest == b""
    return split


@pytest.mark.parametrize(("sound", "container", "mode"), [
    ("aac", "mpegts", "copy"),  # a camera's AAC, as ADTS in MPEG-TS: copied
    ("pcm_mulaw", "matroska", "encode"),  # G.711 as an RTSP camera sends it: made into AAC
])
def test_sound_goes_along_as_aac_and_keyframes_are_found_on_the_video_track(
        sound: str, container: str, mode: str) -> None:
    boxes = remux_with_sound(sound, container, mode)
    init = boxes[0] + boxes[1]
    assert b"mp4a" in init and b"esds" in init and b"avcC" in init
    # the esds holds the AudioSpecificConfig (descriptor tag 5): browsers refuse an init without
    esds = init.index(b"esds")
    assert b"\x05\x80\x80\x80" in init[esds:esds + 64]
    video = fmp4.video_track_id(init)
    assert video is not None
    fragments = fragments_of(boxes)
    samples = [trafs_of(f) for f in fragments]
    video_samples = [t for traf in samples for t in traf if t[0] == video]
    assert len(video_samples) == 30 and all(count == 1 for _, count, _ in video_samples)
    assert any(t[0] != video for traf in samples for t in traf), "no sound in the fragments"
    # every frame keeps its duration (Chromium buffers frames of duration 0 a GOP at a time)
    assert all(duration > 0 for _, _, duration in video_samples), video_samples
    # keyframes are found on the picture's track, every fifth frame, never on a sound sample
    # (each of which is a sync sample)
    with_video = [f for f, traf in zip(fragments, samples) if any(t[0] == video for t in traf)]
    keyframes = [fmp4.starts_with_keyframe(f, video) for f in with_video]
    assert keyframes == [i % GOP == 0 for i in range(len(with_video))]
    assert not any(fmp4.starts_with_keyframe(f, video) for f, traf in zip(fragments, samples)
                   if all(t[0] != video for t in traf))


def trafs_of(fragment: bytes) -> list[tuple[int, int, int]]:
    """(track_ID, sample count, default sample duration) of each traf of a fragment's moof."""
    found, at = [], 0
    while (at := fragment.find(b"tfhd", at + 1)) > 0:
        flags, track = struct.unpack_from(">II", fragment, at + 4)
        pos = at + 12 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
        duration = struct.unpack_from(">I", fragment, pos)[0] if flags & 0x8 else 0
        trun = fragment.index(b"trun", at)
        found.append((track, struct.unpack_from(">I", fragment, trun + 8)[0], duration))
    return found


def test_live_sound_is_copied_for_aac_left_out_for_a_silent_camera_and_made_aac_otherwise(
        ) -> None:
    assert hub_ffmpeg.live_audio_mode("aac", pulled=False) == "copy"
    assert hub_ffmpeg.live_audio_mode("aac", pulled=True) == "copy"
    assert hub_ffmpeg.live_audio_mode("", pulled=False) == "none"  # its footage has no sound
    # an RTSP camera's G.711 is not in its footage (MPEG-TS keeps it as private data)
    assert hub_ffmpeg.live_audio_mode("", pulled=True) == "encode"
    for codec in ("pcm_mulaw", "mp2", None):  # None: no segment probed yet
        assert hub_ffmpeg.live_audio_mode(codec, pulled=False) == "encode"
    assert "frag_every_frame" in " ".join(hub_ffmpeg.live_fmp4_output("none"))
    assert "0:a:0?" not in hub_ffmpeg.live_fmp4_output("none")
    with pytest.raises(ValueError):
        hub_ffmpeg.live_fmp4_output("opus")


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=200))
def test_split_boxes_keeps_every_byte(noise: bytes, cut: int) -> None:
    data = b"\x00\x00\x00\x10moof" + bytes(8) + b"\x00\x00\x00\x0cmdat" + noise[:4]
    head = data[:cut]
    try:
        whole, rest = fmp4.split_boxes(head)
    except fmp4.BadBox:
        return
    assert b"".join(whole) + rest == head


@pytest.fixture
def live(tmp_path: Path, boxes: list[bytes]) -> Iterator[tuple[MseRing, stream.Feed]]:
    """A hub's ring with its init written, and a feed reading it (stopped after the test)."""
    folder = tmp_path / ".live" / CAMERA
    folder.mkdir(parents=True)
    ring = MseRing(folder, "abc123")
    ring.start()
    for box in boxes[:2]:
        ring.put(box)
    feed = stream.Feed(tmp_path, CAMERA)
    feed.viewers = 1  # held by the test
    reader = threading.Thread(target=feed.run, daemon=True)
    reader.start()
    yield ring, feed
    ring.close()
    feed.stop()
    reader.join(5)


def put_frames(ring: MseRing, boxes: list[bytes], first: int, count: int) -> None:
    """Hand fragments number first .. first+count-1 to the ring (moof and mdat boxes)."""
    for box in boxes[2 + 2 * first: 2 + 2 * (first + count)]:
        ring.put(box)


def newest_is(feed: stream.Feed, fragment: bytes) -> bool:
    """Tell whether the feed has read up to this fragment."""
    with feed.changed:
        return bool(feed.fragments) and feed.fragments[-1].data == fragment


def serials_got(chunk: bytes, fragments: list[bytes]) -> list[int]:
    """Which fragments (by index) a chunk carries, in order."""
    found, pos = [], 0
    for index, fragment in enumerate(fragments):
        at = chunk.find(fragment, pos)
        if at >= 0:
            found.append(index)
            pos = at + len(fragment)
    return found


def test_a_new_viewer_starts_at_the_newest_keyframe_and_all_get_the_same_frames(
        live: tuple[MseRing, stream.Feed], boxes: list[bytes]) -> None:
    ring, feed = live
    fragments = fragments_of(boxes)
    put_frames(ring, boxes, 0, 13)  # groups 0-4, 5-9, and 10-12 of the third
    wait_for(lambda: newest_is(feed, fragments[12]), 5, "13 frames read")
    first, second = feed.watch(lambda: 0), feed.watch(lambda: 0)
    opening = next(first)
    assert opening.startswith(boxes[0] + boxes[1]), "the init segment comes first"
    assert serials_got(opening, fragments) == [10, 11, 12], "from the newest keyframe on"
    assert next(second) == opening
    put_frames(ring, boxes, 13, 1)
    assert next(first) == next(second) == fragments[13], "one reader, every viewer"


def test_a_viewer_that_does_not_keep_up_skips_to_the_newest_keyframe(
        live: tuple[MseRing, stream.Feed], boxes: list[bytes]) -> None:
    ring, feed = live
    fragments = fragments_of(boxes)
    backlog = [0]
    viewer = feed.watch(lambda: backlog[0])
    put_frames(ring, boxes, 0, 3)
    assert serials_got(next(viewer), fragments) == [0, 1, 2]
    backlog[0] = stream.BACKLOG_BYTES + 1  # its bytes pile up unsent: it stalls
    got: list[bytes] = []
    taker = threading.Thread(target=lambda: got.append(next(viewer)), daemon=True)
    taker.start()
    put_frames(ring, boxes, 3, 20)  # four keyframes pass while it is stuck
    wait_for(lambda: newest_is(feed, fragments[22]), 5, "23 frames read")
    assert not got, "nothing is sent to a viewer whose bytes pile up"
    backlog[0] = 0  # it drained
    taker.join(5)
    assert serials_got(got[0], fragments) == [20, 21, 22], "straight to the newest keyframe"


def test_a_wall_frames_each_cameras_bytes_with_its_index_and_a_flag_on_its_init(
        live: tuple[MseRing, stream.Feed], boxes: list[bytes]) -> None:
    ring, feed = live
    fragments = fragments_of(boxes)
    put_frames(ring, boxes, 0, 2)
    wait_for(lambda: newest_is(feed, fragments[1]), 5, "2 frames read")
    idle = stream.Feed(feed.storage_root, "shed")  # a camera with nothing yet: no frames
    wall = stream.watch_wall([idle, feed], lambda: 0)
    size, index, starts_run = struct.unpack(">IBB", (chunk := next(wall))[:6])
    assert (index, starts_run) == (1, 1) and size == len(chunk) - 6
    assert chunk[6:] == boxes[0] + boxes[1] + fragments[0] + fragments[1]
    put_frames(ring, boxes, 2, 1)
    assert next(wall) == stream.wall_frame(1, fragments[2], False)
