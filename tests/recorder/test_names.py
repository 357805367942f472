"""Camera names end up in paths and ffmpeg arguments: only an allowlist passes."""

import pytest

from nvrlib.names import InvalidName, slugify, validate_camera_name


@pytest.mark.parametrize("name", ["porch", "driveway-test", "cam_1", "a", "Back.Door", "x" * 64])
def test_safe_names_pass(name):
    assert validate_camera_name(name) == name


@pytest.mark.parametrize("name", [
    "", "..", "a..b", "../etc", "a/b", "a\\b", "%d", "cam%03d", "-i", "-", ".hidden", "_x",
    "x" * 65, "tab\tname", "new\nline", "nul\0", "space name", "ü", "a;rm -rf", "$(x)", "`x`",
])
def test_unsafe_names_are_rejected(name):
    with pytest.raises(InvalidName):
        validate_camera_name(name)


@pytest.mark.parametrize(("text", "slug"), [
    ("Front Door", "Front-Door"), ("../../etc", "etc"), ("", "camera"), ("-x-", "x"),
])
def test_slugify_gives_valid_names(text, slug):
    assert slugify(text) == slug
    validate_camera_name(slugify(text))
