"""edge.direct_uplink.DirectConnection against a scripted hub on a real loopback socket: the
upgrade, batches and the live hint, the refusals before and after the 101, and the end.

(Against the real hub: tests/e2e/test_edge_direct.py.)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.direct_uplink import DirectConnection
from edge.errors import HubClosed, HubRejected, HubUnreachable
from edge.uplink import HubAddress
from tests.edge.fakehub import wait_until

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: nvr-mpegts/3\r\n\r\n"


class ScriptedHub:
    """Accepts one connection, reads the head, answers ``answer``; then collects the stream."""

    def __init__(self, answer: bytes, hang_up: bool = False) -> None:
        self.hang_up = hang_up  # close right after the answer, as the hub does after a refusal
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.answer = answer
        self.head = b""
        self.body = bytearray()
        self.peer: socket.socket | None = None
        self.ended = threading.Event()  # the edge half-closed (or closed)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.peer, _ = self.server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.peer.recv(4096)
        self.head, _, rest = data.partition(b"\r\n\r\n")
        self.body += rest
        self.peer.sendall(self.answer)
        if self.hang_up:
            self.peer.close()
            self.ended.set()
            return
        with contextlib.suppress(OSError):
            while chunk := self.peer.recv(65536):
                self.body += chunk
        self.ended.set()

    def say(self, line: bytes) -> None:
        """Send the edge one line (an ack, a hint, a closing line)."""
        assert self.peer is not None
        self.peer.sendall(line)

    def close(self) -> None:
        """Close the hub's side."""
        if self.peer is not None:
            with contextlib.suppress(OSError):
                self.peer.shutdown(socket.SHUT_RDWR)
            self.peer.close()
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[Callable[[bytes], ScriptedHub]]:
    """Scripted hubs, closed at the end of the test."""
    hubs: list[ScriptedHub] = []

    def start(answer: bytes = SWITCH, hang_up: bool = False) -> ScriptedHub:
        hubs.append(ScriptedHub(answer, hang_up))
        return hubs[-1]

    yield start
    for hub in hubs:
        hub.close()


def connect(hub: ScriptedHub, **options: object) -> DirectConnection:
    return DirectConnection(HubAddress("127.0.0.1", hub.port, "secret", "yard"), "porch",
                            1795467600.25, **options)  # type: ignore[arg-type]


def test_the_head_asks_for_the_upgrade_and_has_no_body_framing(scripted):
    hub = scripted()
    with connect(hub, spool=True):
        head = hub.head.decode()
    assert head.startswith("POST /ingest/v1/porch HTTP/1.1\r\n")
    for line in ("X-NVR-Protocol: 3", "Connection: Upgrade", "Upgrade: nvr-mpegts/3",
                 "Authorization: Bearer secret", "X-NVR-Stream-Epoch: 1795467600.250",
                 "X-NVR-Spool: 1"):
        assert line in head.splitlines(), head
    assert "Transfer-Encoding" not in head and "Content-Length" not in head


def test_frames_wait_for_their_batch_and_go_at_once_while_watched(scripted):
    hub = scripted()
    with connect(hub, batch_seconds=3600) as conn:
        conn.send(b"a" * 100)
        conn.send(b"b" * 100)
        assert conn.unsent == 200 and not hub.body, "batched"
        hub.say(b'{"live":true}\n')
        wait_until(lambda: (conn.poll(), conn.acks.live)[1], 5, "the hint")
        assert conn.unsent == 0  # the waiting batch went with the hint
        conn.send(b"c" * 100)
        assert conn.unsent == 0
        wait_until(lambda: len(hub.body) == 300, 5, "every frame at the hub")
        hub.say(b'{"live":false}\n')
        wait_until(lambda: (conn.poll(), not conn.acks.live)[1], 5, "the hint's end")
        conn.send(b"d" * 100)
        assert conn.unsent == 100


def test_a_half_close_ends_the_stream_and_done_answers_it(scripted):
    hub = scripted()
    acks: list[float] = []
    with connect(hub, on_ack=acks.append) as conn:
        conn.send(b"x" * 1000)
        hub.say(b'{"durable_pts":2.0}\n')
        wait_until(lambda: (conn.poll(), acks)[1], 5, "the ack")

        def answer_the_end() -> None:
            hub.ended.wait(5)
            hub.say(b'{"done":true,"segments":1,"bytes":1000,"durable_pts":2.5}\n')
            hub.close()

        threading.Thread(target=answer_the_end, daemon=True).start()
        response = conn.finish(5)
    assert bytes(hub.body) == b"x" * 1000, "the queued batch went before the half-close"
    assert response.status == 200 and response.done and response.done["segments"] == 1
    assert acks == [2.0, 2.5] and conn.durable_pts == 2.5  # done carries the last ack


@pytest.mark.parametrize("answer, status", [
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 30\r\n\r\nX-NVR-Protocol must be 1 or 2\n", 400),
    (b"HTTP/1.1 401 Unauthorized\r\n\r\nmissing or invalid token\n", 401),
])
def test_a_refused_upgrade_is_a_rejection_with_its_text(scripted, answer, status):
    hub = scripted(answer, hang_up=True)
    with pytest.raises(HubRejected) as caught:
        connect(hub)
    assert caught.value.status == status
    assert caught.value.detail.split(":")[0] in answer.decode()


def test_an_admission_refusal_after_the_101_is_a_rejection(scripted):
    hub = scripted(SWITCH + b'{"closed":"409 the camera porch is already streaming"}\n')
    with connect(hub) as conn:
        hub.close()
        with pytest.raises(HubRejected) as caught:
            wait_until(lambda: conn.poll(), 5, "the closing line")
    assert caught.value.status == 409 and "already streaming" in str(caught.value)


def test_a_restart_closes_the_request_as_in_version_2(scripted):
    hub = scripted(SWITCH + b'{"closed":"recorder restarted (admin)"}\n')
    with connect(hub) as conn:
        with pytest.raises(HubClosed) as caught:
            wait_until(lambda: conn.poll(), 5, "the closing line")
    assert caught.value.restarted


def test_a_hub_that_closes_without_a_word_is_unreachable(scripted):
    hub = scripted()
    with connect(hub) as conn:
        hub.close()
        with pytest.raises(HubUnreachable):
            wait_until(lambda: conn.poll(), 5, "the end")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.sampled_from([b"", b"\r\n", b"garbage"]))
def test_whatever_bytes_follow_a_malformed_answer_the_edge_gets_a_clear_error(lines, tail):
    # a peer that is not a hub (or a broken one): never a hang, never an unhandled exception
    answer = b"".join(lines) + tail + b"\r\n\r\n"
    hub = ScriptedHub(answer, hang_up=True)
    try:
        with pytest.raises((HubRejected, HubUnreachable)):
            with connect(hub):
                if answer.startswith(b"HTTP/1.1 101"):
                    raise HubUnreachable("switched: as good as a clear answer here")
    finally:
        hub.close()
