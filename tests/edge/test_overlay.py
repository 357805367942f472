"""The burned-in time stamp is legible on bright and dark scenes, in the top-left corner; face
boxes (--faces-overlay) are drawn with their labels while held."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.overlay import FACE_BOX_COLOUR, FaceBoxes, draw_overlay, overlay_lines, overlay_rect

WALL = 1_795_467_600.25


@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (1920, 1080)])
@pytest.mark.parametrize("level", [0, 255], ids=["black", "white"])
def test_overlay_changes_its_pixels_on_black_and_white_frames(
    size: tuple[int, int], level: int
) -> None:
    width, height = size
    plain = np.full((height, width, 3), level, np.uint8)
    frame = plain.copy()
    rect = draw_overlay(frame, WALL, "driveway", "driveway-test")
    assert rect == overlay_rect(width, height, overlay_lines(WALL, "driveway", "driveway-test"))
    x, y, w, h = rect
    inside = frame[y : y + h, x : x + w].astype(int)
    before = plain[y : y + h, x : x + w].astype(int)
    changed = np.any(inside != before, axis=2)
    # Text strokes must make up a visible share of the box, in both bright and dark extremes.
    assert changed.mean() > 0.05
    # White strokes on black, dark box and outline on white: both polarities are present.
    assert inside.max() >= 200 and inside.min() <= 60
    outside = np.ones((height, width), bool)
    outside[y : y + h, x : x + w] = False
    assert np.array_equal(frame[outside], plain[outside])


def test_overlay_sits_in_the_top_left_corner() -> None:
    x, y, w, h = overlay_rect(1280, 720, overlay_lines(WALL, "driveway", "driveway-test"))
    assert x < 64 and y < 64
    assert x + w < 1280 * 0.6 and y + h < 720 * 0.25


def test_overlay_text_has_local_time_with_seconds_zone_location_and_camera() -> None:
    stamp, place = overlay_lines(WALL, "driveway", "driveway-test")
    local = time.localtime(WALL)
    assert time.strftime("%Y-%m-%d %H:%M:%S", local) in stamp
    zone = time.strftime("%z", local)
    assert stamp.endswith(zone) and len(stamp.split()) == 4  # date, time, abbreviation, offset
    assert "driveway" in place and "driveway-test" in place


def test_face_boxes_are_drawn_with_their_label_while_held_then_gone() -> None:
    boxes = FaceBoxes(hold=1.0)
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert boxes.draw(frame, 10.0) == 0 and not frame.any()
    boxes.show([(600, 300, 120, 120), (100, 0, 80, 80)], ["Alice", "unknown"], 10.0)
    assert boxes.draw(frame, 10.5) == 2
    assert (frame[300, 600:720] == FACE_BOX_COLOUR).all()  # the top edge of the first box
    assert frame[250:298, 600:720].any()  # its label above it
    assert frame[82:120, 100:180].any()  # the second's label below it: no room above
    assert not frame[320:400, 620:700].any()  # the face itself is left alone
    clean = np.zeros_like(frame)
    assert boxes.draw(clean, 11.0) == 0 and not clean.any()
