"""Camera credentials are masked in any text: a planted secret never survives (hypothesis)."""

from __future__ import annotations

import logging
import string
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nvrlib.redact import (
    MASK, MaskLeft, RedactingFormatter, install_log_redaction, redact, redact_for_edit,
    redact_value, unmask,
)

SECRET_PARAMS = ["password", "pass", "pwd", "passwd", "token", "key", "secret", "auth", "sig",
                 "signature", "api_key", "access_token", "PassWord", "X-Auth-Token", "apiKey",
                 "st", "ST"]  # st: the web app's stream links (webapp/stream_links.py)
# names and values of harmless parameters: no secret-looking name, no "@" or quote
PLAIN_NAMES = st.sampled_from(["user", "channel", "subtype", "stream", "profile", "fps", "u",
                               "start", "first", "s", "t", "est"])
PLAIN_VALUES = st.text(string.ascii_letters + string.digits + "-_.", max_size=8)
HOSTS = st.sampled_from(["10.0.0.5", "cam.local", "[fe80::1]", "192.0.2.10:554", "h:8554"])
PATHS = st.lists(st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=6),
                 max_size=3).map(lambda parts: "/" + "/".join(parts))
# what a careless password looks like: any printable character, some unencoded
SECRETS = st.text(string.ascii_letters + string.digits + "!$%()*+,-.:;=@[]_~'/?#&", min_size=1,
                  max_size=16).map(lambda s: "Zq9" + s)
AROUND = st.sampled_from(["", "pulling ", "[in#0 @ 0x55] Impossible to open '", "error: <",
                          "Did you mean file:", "\"url\": \""])


def plain_query() -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(PLAIN_NAMES, PLAIN_VALUES), max_size=3)
    return pairs.map(lambda ps: ("?" + "&".join(f"{k}={v}" for k, v in ps)) if ps else "")


@settings(max_examples=300, deadline=None)
@given(host=HOSTS, path=PATHS, query=plain_query(), user=PLAIN_VALUES, secret=SECRETS,
       param=st.sampled_from(SECRET_PARAMS), before=AROUND, encoded=st.booleans())
@example(host="h", path="/", query="", user="u", secret="Zq9a'b", param="pwd",
         before="'", encoded=False)
def test_a_planted_secret_never_survives(host, path, query, user, secret, param, before, encoded):
    # the same secret as the password (raw or percent-encoded) and as a secret query value
    in_userinfo = quote(secret, safe="") if encoded else secret.replace("/", "%2F")
    in_query = quote(secret, safe="")
    joiner = "&" if query else "?"
    url = f"rtsp://{user}:{in_userinfo}@{host}{path}{query}{joiner}{param}={in_query}"
    text = f"{before}{url}' and more"
    masked = redact(text)
    assert in_userinfo not in masked and in_query not in masked
    assert masked.startswith(before)
    assert redact(masked) == masked  # idempotent


@settings(max_examples=200, deadline=None)
@given(host=HOSTS, path=PATHS, query=plain_query(), before=AROUND)
def test_urls_without_secrets_are_unchanged(host, path, query, before):
    text = f"{before}rtsp://{host}{path}{query}"
    assert redact(text) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_masking_is_idempotent_on_any_text(text):
    assert redact(redact(text)) == redact(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://***@10.0.0.5:554/s1"),
    ("rtsp://cam/s?user=admin&password=pw&channel=1",
     "rtsp://cam/s?user=admin&password=***&channel=1"),
    ("Input #0, rtsp, from 'rtsp://u:p@cam/x?Token=abc':",
     "Input #0, rtsp, from 'rtsp://***@cam/x?Token=***"),
    ("rtsp://u:it's@cam/x?password=a'b", "rtsp://***@cam/x?password=***"),
    ("a plain line with key=value but no URL", "a plain line with key=value but no URL"),
    # a stream link in a web app log line: the token goes, the range stays
    ('"GET /api/v1/playback/porch.m3u8?start=2026-03-01T10:00:00.000Z&st=WzEsMF0.aBc-_ HTTP/1.1"',
     '"GET /api/v1/playback/porch.m3u8?start=2026-03-01T10:00:00.000Z&st=*** HTTP/1.1"'),
    ("GET ../recordings/7/segment.ts?st=WzEsMF0.aBc-_", "GET ../recordings/7/segment.ts?st=***"),
    ("?stream=1&first=2&est=3", "?stream=1&first=2&est=3"),
])
def test_known_lines(text, expected):
    assert redact(text) == expected


def test_details_of_an_alert_are_masked_inside():
    details = {"last_error": "rtsp://a:pw@cam/x: 401", "n": 3, "lines": ["?token=t0k"]}
    assert redact_value(details) == {"last_error": "rtsp://***@cam/x: 401", "n": 3,
                                     "lines": ["?token=***"]}


def test_the_edit_form_round_trip_keeps_the_stored_secrets():
    stored = "rtsp://admin:p%40ss@cam:554/s?channel=1&password=QS"
    shown = redact_for_edit(stored)
    assert shown == "rtsp://admin:***@cam:554/s?channel=1&password=***"
    assert unmask(shown, stored) == stored
    assert unmask(shown.replace("cam:554", "cam2"), stored) == stored.replace("cam:554", "cam2")
    assert unmask("rtsp://admin:new@cam/s?password=***", stored) == "rtsp://admin:new@cam/s?password=QS"
    assert redact_for_edit("rtsp://T0KEN@cam/s") == f"rtsp://{MASK}@cam/s"
    with pytest.raises(MaskLeft):
        unmask("rtsp://admin:***@cam/s", "rtsp://cam/s")


def test_every_handler_masks_what_it_writes_even_an_exception(caplog):
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("t")
    logger.addHandler(handler)
    install_log_redaction(logger)
    install_log_redaction(logger)  # twice: wrapped once
    assert isinstance(handler.formatter, RedactingFormatter)
    assert not isinstance(handler.formatter.inner, RedactingFormatter)
    try:
        raise OSError("cannot open rtsp://u:Zq9pw@cam/x?key=Zq9k")
    except OSError:
        record = logger.makeRecord("t", logging.ERROR, __file__, 1, "pulling %s",
                                   ("rtsp://u:Zq9pw@cam/x",), __import__("sys").exc_info())
    line = handler.format(record)
    assert "Zq9" not in line and "pulling rtsp://***@cam/x" in line and "key=***" in line
