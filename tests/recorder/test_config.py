"""The hub's TOML config is strict: unknown keys and bad values are named in the error."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import cli, config_schema
from recorder.config import (ALERTS_SCHEMA, CAMERA_SCHEMA, HUB_SCHEMA, RETENTION_SCHEMA,
                             WEBAPP_SCHEMA, build_config, check_file, load_file, parse_listen)
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
    ("hub_id = 'Hub B'", "hub_id: a hub id is 1 to 32 lower-case letters"),
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



# -- every key checked, every problem at once (recorder/config_schema.py) ----------------------

def scalar_keys() -> list[tuple[str, config_schema.Key, Callable[[Any], dict[str, Any]]]]:
    """Every scalar key of the file: its dotted name, its spec, and file values that set it."""
    keys: list[tuple[str, config_schema.Key, Callable[[Any], dict[str, Any]]]] = [
        (key, spec, lambda v, k=key: {k: v}) for key, spec in HUB_SCHEMA.items()
        if isinstance(spec, config_schema.Key)]
    for section, schema in (("alerts", ALERTS_SCHEMA), ("retention", RETENTION_SCHEMA),
                            ("webapp", WEBAPP_SCHEMA)):
        keys += [(f"{section}.{key}", spec, lambda v, s=section, k=key: {s: {k: v}})
                 for key, spec in schema.items()]
    keys += [(f"cameras[0].{key}", spec, lambda v, k=key: {"cameras": [{"name": "gate", k: v}]})
             for key, spec in CAMERA_SCHEMA.items() if key != "name"]
    return keys


KEYS = scalar_keys()
# keys whose value is true/false or a number: no string is ever one of those
TYPED = [key for key in KEYS if key[1].check is config_schema.boolean
         or key[1].check.__qualname__.split(".")[0] in ("number", "whole", "limit")]
# what a TOML file can hold: scalars, dates, arrays and tables
toml_values = st.recursive(
    st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=20)
    | st.datetimes() | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=2),
    max_leaves=5)
EXAMPLES = settings(max_examples=300, deadline=None, derandomize=True)


def problems_of(values: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """The lines of the ConfigError that ``values`` give ([] if they are fine)."""
    try:
        build_config(values, {}, environ or {})
    except ConfigError as exc:
        return str(exc).splitlines()
    return []


def test_the_property_tests_cover_every_kind_of_key():
    assert len(KEYS) > 60 and len(TYPED) > 40
    assert {"live_view", "retention.min_free_gb", "webapp.port", "cameras[0].enabled"} <= {
        name for name, _, _ in TYPED}


@EXAMPLES
@given(key=st.sampled_from(KEYS), value=toml_values)
def test_any_value_of_any_key_is_taken_or_refused_naming_the_key_never_a_traceback(key, value):
    name, _, file_values = key
    for line in problems_of(file_values(value)):
        assert line.startswith(name) or f" {name.rpartition('.')[2]}" in line, line


@EXAMPLES
@given(key=st.sampled_from(TYPED), value=st.text(max_size=12))
def test_a_string_is_refused_for_every_bool_and_number_key(key, value):
    name, _, file_values = key
    [line] = problems_of(file_values(value))
    assert line.startswith(f"{name}: expected ") and line.endswith(f"got {value!r}")


@EXAMPLES
@given(key=st.sampled_from(KEYS), value=st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=2) | st.datetimes())
def test_a_table_or_a_date_is_refused_for_every_scalar_key(key, value):
    name, _, file_values = key
    assert [line for line in problems_of(file_values(value)) if line.startswith(f"{name}: ")]


@pytest.mark.parametrize(("values", "message"), [
    ({"live_view": "false"}, "live_view: expected true or false, got 'false'"),
    ({"webapp": {"public_metrics": 1}}, "webapp.public_metrics: expected true or false, got 1"),
    ({"cameras": [{"name": "a", "enabled": "no"}]},
     "cameras[0].enabled: expected true or false, got 'no'"),
    ({"max_streams": 2.5}, "max_streams: expected a whole number from 1 to 100000, got 2.5"),
    ({"retention": {"min_free_gb": -1}},
     "retention.min_free_gb: must be between 0 and 1000000, got -1"),
    ({"segment_seconds": "abc"}, "segment_seconds: expected a number from 1 to 3600, got 'abc'"),
    ({"stall_timeout": float("nan")}, "stall_timeout: expected a number from 0.1 to 86400"),
    ({"unknown_cameras": "maybe"},
     "unknown_cameras: expected one of record, approve, refuse, got 'maybe'"),
    ({"webapp": {"port": 70000}}, "webapp.port: must be between 0 and 65535, got 70000"),
    ({"alerts": {"email_from": ["a@example.com"]}}, "alerts.email_from: expected one email"),
    ({"cameras": [{"location": "yard"}]}, "cameras[0].name: missing"),
    ({"cameras": {"name": "a"}}, "cameras: must be tables ([[cameras]])"),
    ({"listen": 1025}, "listen: expected \"HOST:PORT\" (a string), got 1025"),
    ({"listen": "h:99999"}, "listen: port 99999 is out of range"),
])
def test_each_bad_value_is_one_line_with_the_key_the_value_and_what_is_allowed(values, message):
    [line] = problems_of(values)
    assert line.startswith(message)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = write(tmp_path, """
lisen = "1:2"
live_view = "false"
segment_seconds = 0
[[cameras]]
name = "gate"
url = "http://x/"
[[cameras]]
name = "shed"
colour = "red"
[retention]
min_free_gb = -1
[alerts]
retry_max = "soon"
[webapp]
prot = 8080
""")
    lines = check_file(path, environ={})
    assert lines == [
        "config: unknown key 'lisen' (did you mean 'listen'?)",
        "live_view: expected true or false, got 'false'",
        "segment_seconds: must be between 1 and 3600, got 0",
        "cameras[0].url: only rtsp:// and rtsps:// URLs can be pulled, got (hidden: it is a secret)",
        "cameras[1]: unknown key 'colour' (allowed: enabled, location, motion_alerts, name, "
        "retention_days, retention_gb, segment_seconds, token, url)",
        "retention.min_free_gb: must be between 0 and 1000000, got -1",
        "alerts.retry_max: expected a number from 0.01 to 86400, got 'soon'",
        "webapp: unknown key 'prot' (did you mean 'port'?)",
    ]
    assert check_file(write(tmp_path, 'listen = "127.0.0.1:1025"\n'), environ={}) == []


def test_a_key_far_from_any_known_one_is_refused_without_a_guess():
    assert problems_of({"frobnicate": 1}) == ["config: unknown key 'frobnicate'"]
    assert problems_of({"retention": {"zzz": 1}}) == [
        "retention: unknown key 'zzz' (allowed: days, interval, max_gb, max_percent, "
        "min_free_gb, min_free_percent)"]


SECRET = "hunter2-secret"


@pytest.mark.parametrize("values", [
    {"db": f"mysql://u:{SECRET}@h/db"}, {"db": f"postgresql://u:{SECRET}@h:port/db"},
    {"ingest_token": ""}, {"cameras": [{"name": "a", "url": f"http://u:{SECRET}@cam/"}]},
    {"cameras": [{"name": "a", "token": ""}]}, {"alerts": {"sendgrid_api_key": [SECRET]}},
    {"webapp": {"users_db": f"oracle://u:{SECRET}@h/db"}},
])
def test_a_secret_is_never_in_a_message(values):
    [line] = problems_of(values)
    assert SECRET not in line and "(hidden: it is a secret)" in line


# -- the environment overrides the secrets -----------------------------------------------------

def test_nvr_db_url_beats_the_file_and_a_flag_beats_it():
    environ = {"NVR_DB_URL": "postgresql+psycopg://nvr:pw@db/nvr"}
    assert build_config({"db": "sqlite:///a.db"}, {}, environ).db_url == environ["NVR_DB_URL"]
    assert build_config({}, {"db": "sqlite:///b.db"}, environ).db_url == "sqlite:///b.db"
    assert build_config({"db": "sqlite:///a.db"}, {}, {}).db_url == "sqlite:///a.db"


def test_a_bad_nvr_db_url_is_named_and_never_shown():
    [line] = problems_of({}, {"NVR_DB_URL": f"mysql://u:{SECRET}@h/db"})
    assert line.startswith("NVR_DB_URL: 'mysql' is not supported") and SECRET not in line


def test_nvr_ingest_token_beats_the_files_token_and_a_token_file_flag_beats_it(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-flag\n")
    environ = {"NVR_INGEST_TOKEN": "from-env"}
    file_values = {"ingest_token": "from-file", "ingest_token_file": str(tmp_path / "absent")}
    assert build_config(file_values, {}, environ).ingest_token == "from-env"
    flag = {"ingest_token_file": str(token_file)}
    assert build_config(file_values, flag, environ).ingest_token == "from-flag"


def test_sendgrid_api_key_beats_the_files_key_and_a_bad_variable_is_named():
    alerts = build_config({"alerts": {"sendgrid_api_key": "SG.file"}}, {},
                          {"SENDGRID_API_KEY": "SG.env"}).alerts
    assert alerts.api_key == "SG.env"
    assert problems_of({}, {"ALERT_EMAIL_TO": "nobody"}) == [
        "ALERT_EMAIL_TO: expected email addresses (name@example.com); 'nobody' is not one, "
        "got 'nobody'"]


# -- python -m recorder check-config FILE ------------------------------------------------------

def test_check_config_prints_ok_or_every_problem_with_its_exit_code(tmp_path, capsys, monkeypatch):
    for variable in ("NVR_DB_URL", "NVR_INGEST_TOKEN", "SENDGRID_API_KEY", "ALERT_EMAIL_TO"):
        monkeypatch.delenv(variable, raising=False)
    good = tmp_path / "good.toml"
    good.write_text('listen = "127.0.0.1:1025"\n')
    assert cli.main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"
    bad = write(tmp_path, 'live_view = "yes"\nmax_streams = 0\n')
    assert cli.main(["check-config", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == ["live_view: expected true or false, got 'yes'",
                                              "max_streams: must be between 1 and 100000, got 0"]
    assert cli.main(["check-config", str(tmp_path / "absent.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    monkeypatch.setenv("NVR_DB_URL", "nope")
    assert cli.main(["check-config", str(good)]) == 1
    assert capsys.readouterr().err.startswith("NVR_DB_URL: not a database URL")
