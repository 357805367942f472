"""Ingest over TLS: an edge pinning the hub's self-signed certificate, a wrong pin, a stock
ffmpeg over https://, and clients that speak no TLS on the TLS port (one hub for the module)."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.tls import fingerprint
from tests.support.ffmpegs import debian_ffmpeg, unavailable_reason
from tests.support.media import segments
from tests.support.procs import Hub, LoggedProcess, ffmpeg_pusher, running, wait_for

pytestmark = pytest.mark.e2e

# short, for the silent client's test; not shorter: on a loaded machine an edge's own TLS
# handshake and request head took over 2 s, was dropped, and backed off past the test's wait
HEAD_TIMEOUT = 5


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI), its key and its pin."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "hub.crt", folder / "hub.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=nvr-hub",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=30)
    pin = fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    return cert, key, pin


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, certificate) -> Iterator[Hub]:
    """A hub whose ingest port speaks only TLS; stopped (and checked) at the module's end."""
    cert, key, _pin = certificate
    hub = Hub(tmp_path_factory.mktemp("tls-hub"),
              config=f'tls_cert = "{cert}"\ntls_key = "{key}"\nhead_timeout = {HEAD_TIMEOUT}\n')
    try:
        hub.start()
        hub.process.wait_line(rf"hub listening on 127.0.0.1:{hub.port} \(TLS\)")
        yield hub
        assert hub.stop() == 0, hub.output[-3000:]
    finally:
        for run in hub.runs:
            run.kill_group()


def start_edge(hub: Hub, camera: str, *trust: str) -> LoggedProcess:
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(hub.port),
            "--location", "yard", "--fps", "10", "--size", "320x240", "--bitrate", "300k",
            "--no-spool", "--camera", "test", "--name", camera, *trust]
    return LoggedProcess(argv)


def test_edge_pinning_the_hub_records_and_a_wrong_pin_is_refused(hub: Hub, certificate):
    good = start_edge(hub, "pinned", "--pin", certificate[2])
    wrong = start_edge(hub, "mispinned", "--pin", "sha256:" + "ab" * 32)
    with running(good, wrong):
        wait_for(lambda: segments(hub.db_path, "pinned"), 60, "pinned footage")
        wrong.wait_line(r"does not match --pin: it is " + certificate[2])
        # the test pattern moves: its motion events come over the same TLS port
        wait_for(lambda: motion_events(hub.db_path), 15, "a motion event over TLS")
    assert segments(hub.db_path, "mispinned") == []
    assert "mispinned" not in hub.output


def motion_events(db_path: Path) -> list[tuple[str]]:
    with sqlite3.connect(db_path, timeout=10) as conn:
        return conn.execute("SELECT event_key FROM motion_events").fetchall()


def test_clients_without_tls_cost_one_log_line_each(hub: Hub):
    with socket.create_connection(("127.0.0.1", hub.port)) as plain:
        plain.sendall(b"POST /ingest/v1/plain HTTP/1.1\r\nHost: x\r\n\r\n")
        assert plain.recv(100) == b""
    hub.process.wait_line(r"refused: it failed the TLS handshake: HTTP_REQUEST "
                          r"\(plain HTTP on the TLS port\?\)")
    with socket.create_connection(("127.0.0.1", hub.port)) as garbage:
        garbage.sendall(bytes(range(256)) * 4)
        assert garbage.recv(100) == b""
    wait_for(lambda: hub.output.count("refused: it failed the TLS handshake") == 2, 5,
             "the garbage's log line")
    with socket.create_connection(("127.0.0.1", hub.port)) as silent:
        hub.process.wait_line(rf"refused: it did not complete the TLS handshake within "
                              rf"{HEAD_TIMEOUT} s")
        silent.settimeout(5)
        assert silent.recv(100) == b""


FFMPEGS = [pytest.param(None, id="wheel"),
           pytest.param(str(debian_ffmpeg()), id="debian", marks=pytest.mark.skipif(
               unavailable_reason() is not None, reason=str(unavailable_reason())))]


@pytest.mark.parametrize("exe", FFMPEGS)
def test_stock_ffmpeg_pushes_over_https(hub: Hub, certificate, exe):
    camera = f"https-{'debian' if exe else 'wheel'}"
    # ffmpeg 8 and later verify the hub by default; 5.1 only when told: tell both
    trust = ("-tls_verify", "1", "-ca_file", str(certificate[0]))
    pusher = ffmpeg_pusher(f"https://127.0.0.1:{hub.port}/ingest/v1/{camera}", seconds=3,
                           size="320x240", rate=10, exe=exe, output_args=trust)
    with running(pusher):
        assert pusher.proc.wait(40) == 0, pusher.output
    wait_for(lambda: sum(r.duration for r in segments(hub.db_path, camera)) >= 2.5, 15,
             "the whole clip cataloged")


def test_version_3_is_refused_over_tls(hub: Hub):
    # ffmpeg cannot read a TLS socket: a direct (version 3) head gets a clear 400
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(f"POST /ingest/v1/direct HTTP/1.1\r\nHost: hub\r\nX-NVR-Protocol: 3\r\n"
                    f"X-NVR-Stream-Epoch: {time.time():.3f}\r\nConnection: Upgrade\r\n"
                    f"Upgrade: nvr-mpegts/3\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"plain connection" in answer
