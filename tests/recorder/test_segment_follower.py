"""recorder.supervise.live.SegmentFollower: a version-3 camera's live view reads ffmpeg's open
segment files as they grow and as ffmpeg moves on from one to the next, on real files: it gets
every byte written after it began, once and in order, whatever moves the finished files away."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.supervise import pts
from recorder.supervise.live import SegmentFollower, recent_start
from tests.support.media import encoded_ts

# what ffmpeg does between two looks: append n bytes to the open file, or open the next file
# (having closed this one) and maybe write to it, or the catalog moves a finished file away
steps = st.lists(st.one_of(st.tuples(st.just("write"), st.integers(1, 5000)),
                           st.tuples(st.just("next"), st.integers(0, 3000)),
                           st.tuples(st.just("move"), st.just(0)),
                           st.tuples(st.just("look"), st.just(0))), max_size=30)


class FakeMuxer:
    """Writes numbered segment files as ffmpeg's segment muxer does."""

    def __init__(self, folder: Path, run: str) -> None:
        self.pattern = folder / f"{run}-%06d.ts"
        self.folder, self.index = folder, 0
        self.written = bytearray()
        self.counter = 0
        self.path(0).write_bytes(b"")

    def path(self, index: int) -> Path:
        return Path(str(self.pattern) % index)

    def write(self, count: int) -> None:
        data = bytes((self.counter + i) % 251 for i in range(count))
        self.counter += count
        with self.path(self.index).open("ab") as file:
            file.write(data)
        self.written += data

    def next(self, count: int) -> None:
        self.index += 1
        self.path(self.index).write_bytes(b"")
        if count:
            self.write(count)

    def move_finished(self) -> None:
        for index in range(self.index):
            if self.path(index).exists():
                self.path(index).rename(self.folder / f"moved-{index}")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), steps)
def test_it_reads_every_byte_after_it_began_once_and_in_order(tmp_path_factory, before, steps):
    folder = tmp_path_factory.mktemp("incoming")
    muxer = FakeMuxer(folder, "ab12cd34")
    muxer.write(before)
    follower = SegmentFollower()
    assert follower.read(muxer.pattern) == b"", "no keyframe to start at: from the end"
    began = len(muxer.written)
    got = bytearray()
    seen_newest = True
    for action, count in steps:
        if action == "write":
            muxer.write(count)
        elif action == "next":
            muxer.next(count)
            seen_newest = False
        elif action == "move":
            # the catalog moves a file once it is finished, milliseconds after ffmpeg opened
            # the next; the follower looks every 40 ms, and segments last seconds: it has seen
            # the next one by then (if not, it skips ahead: see the test below)
            if seen_newest:
                muxer.move_finished()
        else:
            got += follower.read(muxer.pattern)
            seen_newest = True
    got += follower.read(muxer.pattern)
    follower.close()
    assert bytes(got) == bytes(muxer.written[began:])


def test_a_file_that_came_and_went_unseen_is_skipped_for_the_newest(tmp_path):
    muxer = FakeMuxer(tmp_path, "ab12cd34")
    follower = SegmentFollower()
    follower.read(muxer.pattern)
    muxer.write(10)
    muxer.next(20)
    muxer.next(30)
    muxer.move_finished()  # file 1 went before the follower saw it
    assert follower.read(muxer.pattern) == bytes(muxer.written[:10])
    assert follower.read(muxer.pattern) == bytes(muxer.written[-30:])
    follower.close()


def test_a_new_run_starts_at_the_end_of_its_newest_file(tmp_path):
    first, second = FakeMuxer(tmp_path, "11111111"), None
    follower = SegmentFollower()
    follower.read(first.pattern)
    first.write(100)
    assert follower.read(first.pattern) == first.written
    second = FakeMuxer(tmp_path, "22222222")
    second.next(50)
    assert follower.read(second.pattern) == b"", "a new run: from the end of its newest file"
    second.write(70)
    assert follower.read(second.pattern) == bytes(second.written[-70:])
    assert follower.read(None) == b"" and follower.read(None) == b""  # between runs
    follower.close()


def test_nothing_to_follow_yet_is_no_error(tmp_path):
    follower = SegmentFollower()
    pattern = tmp_path / "missing" / "ab-%06d.ts"
    assert follower.read(pattern) == b""
    pattern.parent.mkdir()
    assert follower.read(pattern) == b""  # ffmpeg has not opened its first file yet
    Path(str(pattern) % 0).write_bytes(b"x" * 10)
    assert follower.read(pattern) == b""  # found: from its end
    with Path(str(pattern) % 0).open("ab") as file:
        file.write(b"y" * 5)
    assert follower.read(pattern) == b"y" * 5
    follower.close()


def test_a_new_tap_starts_at_a_keyframe_a_second_and_a_half_back(tmp_path):
    clip = encoded_ts(6, rate=25)  # 1-s GOPs, as an edge sends
    start = recent_start(clip)
    assert clip.endswith(start) and start[0] == 0x47
    finder = pts.StartFinder()
    assert finder.feed(start) is not None and finder.start.offset == 0, "a PAT, its PMT, a keyframe"
    end = pts.StartFinder(every=True)
    end.feed(clip)
    held = pts.seconds(end.last_pts - finder.start.pts)
    assert 1.5 <= held < 2.5 + 0.1, held
    # the follower hands it over as its first read, then what is appended
    (tmp_path / "ab-000000.ts").write_bytes(clip)
    follower = SegmentFollower()
    assert follower.read(tmp_path / "ab-%06d.ts") == start
    with (tmp_path / "ab-000000.ts").open("ab") as file:
        file.write(b"more")
    assert follower.read(tmp_path / "ab-%06d.ts") == b"more"
    follower.close()


def test_a_file_younger_than_that_starts_at_its_first_keyframe():
    clip = encoded_ts(1, rate=25)
    assert recent_start(clip) == clip[clip.index(b"\x47\x40\x00"):]  # its first PAT
    assert recent_start(b"") == b"" and recent_start(b"\x47" + bytes(187)) == b""
