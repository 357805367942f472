"""The served web app (`python -m webapp`, a real process) under 200 slow connections, and which
peers' X-Forwarded-Proto it believes.

The audit's slowloris: 105 partial request heads made every page and /api/v1/health time out
(waitress's 100 connections). The health probe must now answer within 1 s, measured as the
worst of a few probes while the flood trickles.
"""

from __future__ import annotations

import http.client
import os
import sys
from collections.abc import Iterator

import pytest

from tests.support.procs import ROOT, LoggedProcess, free_port, wait_for
from tests.support.slowloris import Slowloris, probe
from webapp.server import CONNECTIONS_PER_ADDRESS

SLOW_CONNECTIONS = 200
PROBES = 5
ANSWER_WITHIN = 1.0  # seconds, the bar
PROXY = "127.0.0.2"  # the only address whose X-Forwarded-* the app believes here


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoggedProcess, int]]:
    """The web app served on 127.0.0.1 behind a 'proxy' at 127.0.0.2; stopped afterwards."""
    folder = tmp_path_factory.mktemp("slow-clients")
    port = free_port()
    argv = [sys.executable, "-m", "webapp", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--db", f"sqlite:///{folder / 'nvr.db'}", "--storage", str(folder / "recordings"),
            "--trusted-proxies", PROXY]
    server = LoggedProcess(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=folder)
    try:
        server.wait_line(r"web app listening on http://", timeout=60)
        yield server, port
    finally:
        if server.proc.poll() is None:
            server.terminate(timeout=20)
        server.kill_group()


def worst_answer(port: int, source: str) -> float:
    """The slowest of a few /api/v1/health probes from ``source``, in seconds."""
    return max(probe(f"http://127.0.0.1:{port}/api/v1/health", source=source, timeout=5)
               for _ in range(PROBES))


def test_health_answers_within_1s_while_200_slow_connections_trickle(
        web: tuple[LoggedProcess, int]) -> None:
    server, port = web
    with Slowloris(port, SLOW_CONNECTIONS, ["127.0.0.1"]) as flood:
        # The flood really holds its address's share: the server says so.
        server.wait_line(rf"127\.0\.0\.1 holds {CONNECTIONS_PER_ADDRESS} connections", timeout=15)
        assert flood.opened >= CONNECTIONS_PER_ADDRESS
        assert worst_answer(port, "127.0.0.3") < ANSWER_WITHIN  # another address is not starved
    sources = [f"127.0.0.{n}" for n in range(10, 15)]  # 5 x 40: every one of them is let in
    with Slowloris(port, SLOW_CONNECTIONS, sources) as flood:
        wait_for(lambda: flood.opened >= SLOW_CONNECTIONS, 15, "200 slow connections open")
        assert worst_answer(port, "127.0.0.1") < ANSWER_WITHIN
        assert flood.alive() >= SLOW_CONNECTIONS * 0.9  # they were held, not turned away


def session_cookie(port: int, source: str, headers: dict[str, str]) -> str:
    """GET the login page from ``source`` with ``headers``; return its nvr_session Set-Cookie."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/auth/login", headers=headers)
        response = conn.getresponse()
        response.read()
        cookies = [v for k, v in response.getheaders() if k.lower() == "set-cookie"]
    finally:
        conn.close()
    [cookie] = [c for c in cookies if c.startswith("nvr_session=")]
    return cookie


def test_forwarded_https_makes_cookies_secure_only_from_the_trusted_proxy(
        web: tuple[LoggedProcess, int]) -> None:
    _, port = web
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"}
    assert "; Secure" in session_cookie(port, PROXY, forwarded)
    assert "; Secure" not in session_cookie(port, "127.0.0.4", forwarded)
    assert "; Secure" not in session_cookie(port, PROXY, {})


def test_sigterm_still_stops_it_cleanly(web: tuple[LoggedProcess, int]) -> None:
    server, _ = web
    assert server.terminate(timeout=20) == 0
    assert "web app stopped" in server.output
    assert "Traceback" not in server.output

