"""The hub's TOML config is strict: unknown keys and bad values are named in the error."""

from pathlib import Path

import pytest

from recorder.config import build_config, load_file, parse_listen
from recorder.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_ones():
    config = build_config({}, {})
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 1025)
    assert str(config.storage) == "data/recordings"
    assert config.db_url == "sqlite:///data/nvr.db"
    assert config.segment_seconds == 10


def test_file_values_and_flags_merge_with_flags_winning(tmp_path):
    path = write(tmp_path, """
listen = "127.0.0.1:2000"
segment_seconds = 6
[[cameras]]
name = "gate"
location = "front"
url = "rtsp://user:pw@10.0.0.5/stream1"
segment_seconds = 4
""")
    config = build_config(load_file(path), {"listen": "127.0.0.1:3000", "db": None})
    assert config.listen_port == 3000
    assert config.segment_seconds == 6
    assert config.camera("gate").is_pull
    assert config.segment_seconds_for("gate") == 4
    assert config.segment_seconds_for("other") == 6


def test_token_file_is_read_and_stripped(tmp_path):
    token = tmp_path / "token"
    token.write_text("abc123\n")
    assert build_config({"ingest_token_file": str(token)}, {}).ingest_token == "abc123"


@pytest.mark.parametrize(("text", "message"), [
    ("lisen = '1:2'", "unknown key 'lisen'"),
    ("[[cameras]]\nname = '../x'", "cameras[0].name"),
    ("[[cameras]]\nname = 'a'\ncolour = 1", "unknown key 'colour'"),
    ("[[cameras]]\nname = 'a'\nurl = 'http://x/'", "only rtsp://"),
    ("[[cameras]]\nname = 'a'\n[[cameras]]\nname = 'a'", "same name"),
    ("segment_seconds = 0.1", "segment_seconds"),
    ("listen = 'nope'", "listen"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_config_is_rejected_with_the_key_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace(".", r"\.").replace("'", "'")):
        build_config(load_file(write(tmp_path, text)), {})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "absent.toml")


@pytest.mark.parametrize(("value", "expected"), [
    ("0.0.0.0:1025", ("0.0.0.0", 1025)), (":8000", ("0.0.0.0", 8000)), ("[::1]:9", ("::1", 9)),
])
def test_listen_addresses_parse(value, expected):
    assert parse_listen(value) == expected
