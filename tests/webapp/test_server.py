"""The guarded server's own limits, on real sockets with a tiny WSGI app and short limits.

The slowloris against the real web app is in test_server_slowloris.py.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from waitress import wasyncore

from tests.support.certs import openssl_missing, self_signed
from tests.support.procs import wait_for
from tests.support.requirements import require
from tests.support.slowloris import probe
from webapp.proxy import TrustedProxies
from webapp.server import GuardedServer, Limits, create_server, tls_context

LIMITS = Limits(per_address=3, head_timeout=1.0)


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app that answers every request at once."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture(scope="module")
def server() -> Iterator[GuardedServer]:
    """The guarded server on a free port of 127.0.0.1, run in a thread; closed afterwards."""
    yield from running(create_server(hello, host="127.0.0.1", port=0, threads=2, limits=LIMITS,
                                     exempt=TrustedProxies(["127.0.0.9"])))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedServer]:
    """The guarded server with TLS (a self-signed certificate), run in a thread."""
    require(openssl_missing())  # a missing tool fails the test: a skip proves nothing
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    yield from running(create_server(hello, host="127.0.0.1", port=0, threads=2, limits=LIMITS,
                                     tls=tls_context(cert, key)))


def running(served: GuardedServer) -> Iterator[GuardedServer]:
    """Run ``served``'s loop in a thread until the caller is done with it."""
    loop = threading.Thread(target=served.run, daemon=True)
    loop.start()
    try:
        yield served
    finally:
        served.task_dispatcher.shutdown()
        wasyncore.close_all(served._map)  # the loop ends when its map is empty
        loop.join(10)


def connect(server: GuardedServer, source: str, head: bytes = b"") -> socket.socket:
    """A connection from ``source`` that has sent ``head`` (the cap tests send nothing, so that
    only the cap, not the head deadline, can close them)."""
    sock = socket.create_connection(("127.0.0.1", server.effective_port), timeout=5,
                                    source_address=(source, 0))
    sock.sendall(head)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Tell whether the server has closed ``sock`` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def seconds_until_cut(sock: socket.socket, what: str) -> float:
    """Send ``sock`` a byte every 0.1 s until the server closes it; return how long that took.

    The bytes keep the connection busy: only a deadline of the server can end it."""
    started = time.monotonic()

    def cut() -> bool:
        try:
            sock.send(b"X")
        except OSError:
            return True
        return closed_by_server(sock)

    wait_for(cut, 10, f"the server to close the slow {what}", interval=0.1)
    return time.monotonic() - started


def test_a_head_sent_a_byte_at_a_time_is_cut_at_its_deadline(server: GuardedServer) -> None:
    with connect(server, "127.0.0.11", b"GET / HTTP/1.1\r\n") as sock:
        assert LIMITS.head_timeout <= seconds_until_cut(sock, "head") < LIMITS.head_timeout + 5


BODY_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"


def test_a_body_sent_a_byte_at_a_time_is_cut_after_the_grace(server: GuardedServer) -> None:
    with connect(server, "127.0.0.14", BODY_HEAD) as sock:  # 10 bytes a second: far too slow
        assert LIMITS.head_timeout <= seconds_until_cut(sock, "body") < LIMITS.head_timeout + 5


def test_a_body_at_a_modest_steady_rate_is_served_past_the_grace(server: GuardedServer) -> None:
    # 200 kB at ~40 kB/s: 5 s, far past the 1-s grace, but 5 times the minimum rate
    sock = connect(server, "127.0.0.15", BODY_HEAD)
    try:
        for _ in range(50):
            sock.sendall(b"x" * 4000)
            time.sleep(0.1)  # the pace of a slow uplink, not a wait for a condition
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
    finally:
        sock.close()


def test_one_address_gets_its_share_and_no_more(server: GuardedServer) -> None:
    url = f"http://127.0.0.1:{server.effective_port}/"
    held = [connect(server, "127.0.0.12") for _ in range(LIMITS.per_address)]
    try:
        wait_for(lambda: server.per_address["127.0.0.12"] == LIMITS.per_address, 5,
                 "the server to hold the address's connections")
        extra = connect(server, "127.0.0.12")
        with extra:
            wait_for(lambda: closed_by_server(extra), 5, "the connection over the cap to close")
        assert probe(url, source="127.0.0.13") < 5  # another address is served meanwhile
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: probe(url, source="127.0.0.12") < 5, 5, "the address to be served again")


def test_a_trusted_proxy_is_not_capped(server: GuardedServer) -> None:
    held = [connect(server, "127.0.0.9") for _ in range(LIMITS.per_address + 2)]
    try:
        wait_for(lambda: server.per_address["127.0.0.9"] == len(held), 5,
                 "the server to hold every connection of the proxy")
        assert not any(closed_by_server(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()


def test_tls_serves_and_a_stalled_handshake_is_cut_at_the_deadline(
        tls_server: GuardedServer) -> None:
    stalled = connect(tls_server, "127.0.0.21", b"\x16\x03\x01")  # a ClientHello's first bytes
    started = time.monotonic()
    try:
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", tls_server.effective_port), timeout=5) as raw:
            with client.wrap_socket(raw) as sock:  # served while the other one stalls
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        wait_for(lambda: closed_by_server(stalled), 10, "the stalled handshake to be cut")
        assert time.monotonic() - started >= LIMITS.head_timeout
    finally:
        stalled.close()
