"""The hub's TOML config is strict: unknown keys and bad values are named in the error."""

import re
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


ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_config_example_is_valid(tmp_path):
    block = re.search(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    (tmp_path / "token").write_text("secret\n")
    (tmp_path / "key").write_text("SG.key\n")
    block = block.replace("/etc/nvr/ingest.token", str(tmp_path / "token"))
    block = block.replace("/etc/nvr/sendgrid.key", str(tmp_path / "key"))
    config = build_config(load_file(write(tmp_path, block)), {}, {})
    assert config.alerts.api_key == "SG.key" and config.alerts.email_to == ("owner@example.com",)
    assert (config.retention.days, config.retention.max_gb) == (30, 2000)
    assert config.camera("driveway-test").retention_days == 7


def test_the_environment_overrides_the_alerts_section(tmp_path):
    path = write(tmp_path, '[alerts]\nemail_to = "a@example.com"\nsendgrid_api_host = '
                           '"https://api.sendgrid.com"\n')
    environ = {"SENDGRID_API_KEY": "SG.env", "ALERT_EMAIL_TO": "b@example.com, c@example.com",
               "ALERT_EMAIL_FROM": "hub@example.com", "SENDGRID_API_HOST": "http://127.0.0.1:9"}
    alerts = build_config(load_file(path), {}, environ).alerts
    assert alerts.api_key == "SG.env" and alerts.api_host == "http://127.0.0.1:9"
    assert alerts.email_to == ("b@example.com", "c@example.com")
    assert alerts.email_from == "hub@example.com" and alerts.email_to_from_environment
    assert "SG.env" not in repr(alerts)  # the key never reaches a log line
    assert build_config(load_file(path), {}, {}).alerts.email_to == ("a@example.com",)


@pytest.mark.parametrize(("text", "message"), [
    ('[alerts]\nemail_to = "not-an-address"\n', "alerts.email_to"),
    ("[alerts]\nsurprise = 1\n", "alerts: unknown key 'surprise'"),
    ('[alerts]\nsendgrid_api_host = "ftp://x"\n', "alerts.sendgrid_api_host"),
    ("[alerts]\ndebounce_burst = 0\n", "alerts.debounce_burst"),
    ("[retention]\ndays = -1\n", "retention.days"),
    ("[retention]\nmax_percent = 150\n", "retention.max_percent"),
    ("[retention]\nkeep = 3\n", "retention: unknown key 'keep'"),
    ('retention = 3\n', "[retention] must be a table"),
    ('[[cameras]]\nname = "a"\nretention_gb = "lots"\n', "cameras[0].retention_gb"),
    ("health_interval = 0\n", "health_interval"),
])
def test_bad_alert_and_retention_settings_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(load_file(write(tmp_path, text)), {}, {})


@pytest.mark.parametrize("value", [5, "not a url", "mysql://u:pw@h/db"])
def test_db_must_be_a_supported_database_url_and_the_error_hides_it(value):
    with pytest.raises(ConfigError, match=r"^db: ") as caught:
        build_config({"db": value}, {})
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("values, policy", [
    ({}, "record"), ({"unknown_cameras": "approve"}, "approve"),
    ({"unknown_cameras": "refuse"}, "refuse"), ({"allow_new_cameras": False}, "refuse"),
    ({"require_approval": True}, "approve"),
    ({"allow_new_cameras": True, "require_approval": False}, "record"),
])
def test_unknown_cameras_is_one_key_and_the_older_ones_map_onto_it(values, policy):
    config = build_config(values, {})
    assert config.unknown_cameras == policy
    assert config.allow_new_cameras == (policy != "refuse")
    assert config.require_approval == (policy == "approve")


@pytest.mark.parametrize("values, message", [
    ({"unknown_cameras": "maybe"}, "unknown_cameras: expected one of record, approve, refuse"),
    ({"unknown_cameras": "refuse", "allow_new_cameras": False}, "keep only unknown_cameras"),
    ({"tls_cert": "/nonexistent.crt"}, "set both"),
    ({"tls_cert": "/nonexistent.crt", "tls_key": "/nonexistent.key"}, "tls_cert: /nonexistent.crt"),
    ({"tls_listen": ":1026"}, "tls_listen: needs tls_cert and tls_key"),
])
def test_bad_policy_and_tls_keys_are_named(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(values, {})


def test_tls_files_and_a_second_tls_port(tmp_path):
    cert, key = tmp_path / "hub.crt", tmp_path / "hub.key"
    cert.write_text("x")
    key.write_text("x")
    config = build_config({"tls_cert": str(cert), "tls_key": str(key),
                           "tls_listen": "127.0.0.1:1026"}, {})
    assert config.tls and (config.tls_cert, config.tls_key) == (cert, key)
    assert config.tls_listen == ("127.0.0.1", 1026)
