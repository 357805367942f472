"""Forwarded headers: believed from the configured proxies' addresses only, dropped from others."""

from __future__ import annotations

from typing import Any

import pytest

from recorder.errors import ConfigError
from webapp.proxy import ForwardedFromTrustedProxies, TrustedProxies, proxies_setting


def seen_by_app(proxies: list[str], remote: str, headers: dict[str, str]) -> dict[str, Any]:
    """Return the WSGI environ the app gets for a request from ``remote`` with ``headers``."""
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        return []

    environ = {"REMOTE_ADDR": remote, "wsgi.url_scheme": "http",
               **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}
    ForwardedFromTrustedProxies(app, TrustedProxies(proxies))(environ, lambda *a: None)
    return seen


FORWARDED = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("proxies, remote", [(["127.0.0.1"], "127.0.0.1"),
                                             (["10.0.0.0/8"], "10.20.30.40"),
                                             (["::1"], "::1"),
                                             (["192.0.2.1"], "::ffff:192.0.2.1")])
def test_a_trusted_proxy_sets_client_address_and_scheme(proxies: list[str], remote: str) -> None:
    environ = seen_by_app(proxies, remote, FORWARDED)
    assert environ["REMOTE_ADDR"] == "203.0.113.5"
    assert environ["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize("proxies", [[], ["127.0.0.2"], ["10.0.0.0/8"]])
def test_anyone_else_has_the_forwarded_headers_removed(proxies: list[str]) -> None:
    environ = seen_by_app(proxies, "127.0.0.1", {**FORWARDED, "Forwarded": "for=1.2.3.4"})
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert not any(key.startswith(("HTTP_X_FORWARDED", "HTTP_FORWARDED")) for key in environ)


@pytest.mark.parametrize("value, parsed", [(None, []), ("", []), ([], []),
                                           ("127.0.0.1, 10.0.0.0/8", ["127.0.0.1", "10.0.0.0/8"]),
                                           (["::1"], ["::1"])])
def test_the_setting_takes_a_list_or_a_comma_separated_string(value: Any, parsed: list) -> None:
    assert proxies_setting(value) == parsed


@pytest.mark.parametrize("value, message", [(1, "no longer a count"), (True, "list"),
                                            (["nvr.example"], "'nvr.example' is not an IP"),
                                            (["10.0.0.0/33"], "is not an IP")])
def test_a_bad_setting_is_refused_with_a_clear_message(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        proxies_setting(value)
