"""Ingest over TLS: an edge pinning the hub's self-signed certificate, a wrong pin, a stock
ffmpeg over https://, and clients that speak no TLS on the TLS port."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from edge.tls import fingerprint
from tests.support.ffmpegs import debian_ffmpeg, unavailable_reason
from tests.support.media import segments
from tests.support.procs import LoggedProcess, ffmpeg_pusher, running, wait_for


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


def tls_hub(hub_factory, certificate, extra: str = ""):
    cert, key, _pin = certificate
    return hub_factory(config=f'tls_cert = "{cert}"\ntls_key = "{key}"\n{extra}').start()


def start_edge(hub, camera: str, *trust: str) -> LoggedProcess:
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(hub.port),
            "--location", "yard", "--fps", "10", "--size", "320x240", "--bitrate", "300k",
            "--no-spool", "--camera", "test", "--name", camera, *trust]
    return LoggedProcess(argv)


def test_edge_pinning_the_hub_records_and_a_wrong_pin_is_refused(hub_factory, certificate):
    hub = tls_hub(hub_factory, certificate)
    good = start_edge(hub, "pinned", "--pin", certificate[2])
    wrong = start_edge(hub, "mispinned", "--pin", "sha256:" + "ab" * 32)
    with running(good, wrong):
        wait_for(lambda: len(segments(hub.db_path, "pinned")) >= 2, 40, "pinned footage")
        wrong.wait_line(r"does not match --pin: it is " + certificate[2])
        # a client without TLS and one sending garbage cost a log line each, nothing else
        with socket.create_connection(("127.0.0.1", hub.port)) as plain:
            plain.sendall(b"POST /ingest/v1/plain HTTP/1.1\r\nHost: x\r\n\r\n")
            assert plain.recv(100) == b""
        hub.process.wait_line(r"refused: it failed the TLS handshake: HTTP_REQUEST "
                              r"\(plain HTTP on the TLS port\?\)")
    assert hub.stop() == 0
    assert segments(hub.db_path, "mispinned") == []
    assert "mispinned" not in hub.output


def test_handshake_that_never_completes_ends_at_head_timeout(hub_factory, certificate):
    hub = tls_hub(hub_factory, certificate, "head_timeout = 1\n")
    with socket.create_connection(("127.0.0.1", hub.port)) as silent:
        hub.process.wait_line(r"refused: it did not complete the TLS handshake within 1 s")
        silent.settimeout(5)
        assert silent.recv(100) == b""
    assert hub.stop() == 0


FFMPEGS = [pytest.param(None, id="wheel"),
           pytest.param(str(debian_ffmpeg()), id="debian", marks=pytest.mark.skipif(
               unavailable_reason() is not None, reason=str(unavailable_reason())))]


@pytest.mark.parametrize("exe", FFMPEGS)
def test_stock_ffmpeg_pushes_over_https(hub_factory, certificate, exe):
    hub = tls_hub(hub_factory, certificate)
    url = f"https://127.0.0.1:{hub.port}/ingest/v1/https"
    # ffmpeg 8 and later verify the hub by default; 5.1 only when told: tell both
    trust = ("-tls_verify", "1", "-ca_file", str(certificate[0]))
    pusher = ffmpeg_pusher(url, seconds=5, size="320x240", rate=10, exe=exe, output_args=trust)
    with running(pusher):
        assert pusher.proc.wait(40) == 0, pusher.output
    wait_for(lambda: len(segments(hub.db_path, "https")) >= 2, 15, "segments")
    assert hub.stop() == 0
    assert 4 <= sum(r.duration for r in segments(hub.db_path, "https")) <= 5.5
