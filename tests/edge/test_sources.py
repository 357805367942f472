"""Source classification, secret-free display, and default camera names."""

from __future__ import annotations

import pytest

from edge.sources import DEVICE, FILE, TEST, URL, default_name, parse_source
from nvrlib.redact import redact
from nvrlib.names import is_valid_camera_name


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("test", TEST),
        ("0", DEVICE),
        ("12", DEVICE),
        ("/dev/video2", DEVICE),
        ("/dev/v4l/by-id/usb-Cam-video-index0", DEVICE),
        ("rtsp://cam.local/stream1", URL),
        ("RTSP://cam.local/stream1", URL),
        ("http://10.0.0.5/mjpeg", URL),
        ("https://cam.example/live.m3u8", URL),
        ("/videos/front door.mp4", FILE),
        ("clip.mkv", FILE),
        ("C:video.mp4", FILE),
    ],
)
def test_camera_argument_is_classified(text: str, kind: str) -> None:
    assert parse_source(text).kind == kind


@pytest.mark.parametrize(
    ("location", "camera", "expected"),
    [
        ("driveway", "test", "driveway-test"),
        ("driveway", "0", "driveway-video0"),
        ("driveway", "/dev/video3", "driveway-video3"),
        ("driveway", "/videos/Front Door.mp4", "driveway-Front-Door"),
        ("driveway", "clip.v2.mkv", "driveway-clip.v2"),
        ("driveway", "rtsp://admin:pw@192.168.1.20:554/Streaming/101", "driveway-192.168.1.20"),
        ("driveway", "http://porch-cam.lan/video.mjpg", "driveway-porch-cam.lan"),
        ("driveway", "rtsp://[fe80::1]/live", "driveway-fe80-1"),
        ("Back Yard", "test", "Back-Yard-test"),
        ("../etc", "test", "etc-test"),
        ("garage", "/tmp/-rf ;rm.mp4", "garage-rf-rm"),
        ("x" * 80, "test", "x" * 64),
    ],
)
def test_default_name_is_derived_from_location_and_source(
    location: str, camera: str, expected: str
) -> None:
    name = default_name(location, parse_source(camera))
    assert name == expected
    assert is_valid_camera_name(name)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.9:554/live", "rtsp://***@10.0.0.9:554/live"),
        ("rtsp://admin@10.0.0.9/live", "rtsp://***@10.0.0.9/live"),
        ("http://cam/snap?user=a&password=hunter2", "http://cam/snap?user=a&password=***"),
        ("https://cam/live.m3u8?token=hunter2#frag", "https://cam/live.m3u8?token=***#frag"),
        ("rtsp://[fe80::1]:554/x", "rtsp://[fe80::1]:554/x"),
        ("rtsp://cam.local/stream1", "rtsp://cam.local/stream1"),
    ],
)
def test_url_is_logged_without_credentials(url: str, expected: str) -> None:
    assert redact(url) == expected
    assert "hunter2" not in parse_source(url).display()
