"""ffmpeg argument lists: credentials scrubbed, segment list parsed, no shell anywhere."""

from pathlib import Path

import pytest

from nvrlib.redact import redact
from recorder.supervise.ffmpeg import (
    StderrRing, UnsafeUrl, hidden_input_list, parse_segment_list_line, pull_segmenter_argv,
    push_segmenter_argv,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://***@10.0.0.5:554/s1"),
    ("Input #0, rtsp, from 'rtsp://u:p@cam/x':", "Input #0, rtsp, from 'rtsp://***@cam/x':"),
    ("rtsp://cam/x", "rtsp://cam/x"),
])
def test_credentials_are_scrubbed(text, expected):
    assert redact(text) == expected


def test_stderr_ring_keeps_the_last_lines_scrubbed():
    ring = StderrRing(size=3)
    for i in range(5):
        ring.add(f"line {i} rtsp://a:b@c/d\n")
    assert ring.tail() == [f"line {i} rtsp://***@c/d" for i in (2, 3, 4)]


def test_segmenters_copy_without_reencoding_and_list_segments_on_a_pipe():
    push = push_segmenter_argv(Path("/s/cam/.incoming/ab-%06d.ts"), 10, 7)
    pull = pull_segmenter_argv(9, Path("/s/cam/.incoming/ab-%06d.ts"), 10, 7)
    for argv in (push, pull):
        assert argv[argv.index("-c") + 1] == "copy"
        assert argv[argv.index("-segment_list") + 1] == "pipe:7"
        assert argv[argv.index("-segment_format") + 1] == "mpegts"
    assert pull[pull.index("-i") + 1] == "pipe:9"  # the URL comes on a pipe, not in the argv
    assert "-output_ts_offset" not in push + pull  # a stream that starts near PTS 0 stays as is


def test_a_stream_already_far_in_is_shifted_back_on_the_output_side():
    argv = push_segmenter_argv(Path("/s/cam/.incoming/ab-%06d.ts"), 10, 7, pts_offset=599.25)
    offset = argv.index("-output_ts_offset")
    assert argv[offset + 1] == "-599.250"
    assert argv.index("-i") < offset < argv.index("-f", argv.index("-i"))  # an output option


@pytest.mark.parametrize(("line", "parsed"), [
    ("ab-000001.ts,3.400000,5.400000\n", ("ab-000001.ts", 3.4, 5.4)),
    ('"odd,name.ts",1,2', ("odd,name.ts", 1.0, 2.0)),
    ("garbage", None),
    ("a,b,c", None),
])
def test_segment_list_lines_parse(line, parsed):
    assert parse_segment_list_line(line) == parsed


def test_no_module_uses_a_shell():
    root = Path(__file__).resolve().parents[2]
    for path in [*root.glob("recorder/*.py"), *root.glob("edge/*.py"), *root.glob("nvrlib/*.py")]:
        assert "shell=True" not in path.read_text(), path


def test_rates_are_smoothed_over_a_window():
    from recorder.control import RateMeter

    now = [0.0]
    meter = RateMeter(clock=lambda: now[0])
    assert meter.rates("cam", 0, 0) == (0.0, 0.0)
    # ffmpeg's counter moves in steps of 30 frames; the true rate is 15 fps, 1 Mbit/s
    for step in range(1, 8):
        now[0] = 3.0 * step
        frames = (45 * step) // 30 * 30
        fps, bps = meter.rates("cam", frames, 375_000 * step)
    assert 13 <= fps <= 17 and abs(bps - 1_000_000) < 1


def test_the_pull_list_carries_the_url_and_tcp_and_survives_quotes():
    data = hidden_input_list("rtsp://u:it's@cam/x?password=q").decode()
    assert "file 'rtsp://u:it'\\''s@cam/x?password=q'" in data
    assert "option rtsp_transport 'tcp'" in data


@pytest.mark.parametrize("url", ["rtsp://cam/x\nfile '/etc/passwd'", "rtsp://cam/" + "x" * 5000])
def test_a_url_that_would_change_the_list_is_refused(url):
    with pytest.raises(UnsafeUrl):
        hidden_input_list(url)
