"""The uplink over TLS 1.3: records that carry no data (session tickets) never stall a send."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.tls import TlsSettings
from edge.uplink import HubAddress, HubConnection, _readable
from tests.support.certs import openssl_missing, self_signed

pytestmark = pytest.mark.skipif(openssl_missing() is not None, reason=str(openssl_missing()))

BODY_BEFORE_ANSWER = 4000  # the hub answers once it saw MPEG-TS, as recorder/ingest does


class LateAnsweringHub(threading.Thread):
    """A TLS 1.3 server that sends its session tickets, then answers a stream only after
    BODY_BEFORE_ANSWER bytes of its body arrived (the real hub checks the first bytes)."""

    def __init__(self, cert: Path, key: str | Path) -> None:
        super().__init__(daemon=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(cert, key)
        context.num_tickets = 2
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.answered = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        self.listener.settimeout(10)
        raw, _ = self.listener.accept()
        with self.context.wrap_socket(raw, server_side=True) as conn:  # tickets go out here
            conn.settimeout(0.2)
            while not self.stopping.is_set():
                try:
                    data = conn.recv(65536)
                except (TimeoutError, socket.timeout):
                    continue
                if not data:
                    return
                self.received += len(data)
                if self.received >= BODY_BEFORE_ANSWER and not self.answered.is_set():
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    self.answered.set()


@pytest.fixture
def late_hub(tmp_path: Path) -> Iterator[LateAnsweringHub]:
    """The server thread, stopped at the end."""
    cert, key = self_signed(tmp_path, "hub")
    hub = LateAnsweringHub(cert, key)
    hub.start()
    yield hub
    hub.stopping.set()
    hub.listener.close()
    hub.join(10)


def test_a_session_ticket_waiting_on_the_socket_does_not_block_the_first_send(
        late_hub: LateAnsweringHub, tmp_path: Path) -> None:
    address = HubAddress("127.0.0.1", late_hub.port, None, "yard",
                         tls=TlsSettings(ca_file=tmp_path / "hub.crt"))
    with HubConnection(address, "porch", time.time()) as connection:
        deadline = time.monotonic() + 10
        while not _readable(connection._sock):  # the tickets reached the edge's socket
            assert time.monotonic() < deadline, "the server sent no session ticket"
            time.sleep(0.01)
        # before the fix, this read the tickets, then blocked for an answer that comes only
        # after the body: "no response from 127.0.0.1:PORT" three seconds later
        connection.send(b"G" * BODY_BEFORE_ANSWER)
        assert late_hub.answered.wait(10)
        deadline = time.monotonic() + 10
        while connection.protocol != 2:
            assert time.monotonic() < deadline, "the edge never read the hub's answer"
            connection.poll()
            time.sleep(0.01)
