"""recorder.ingest.direct.DirectSocket on real loopback sockets: what the hub learns from the
kernel about a socket only ffmpeg reads, and that nothing it does can block the event loop."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.ingest.direct import LOWAT_MAX, DirectSocket
from tests.support.procs import wait_for

HEAD = b"POST /ingest/v1/cam HTTP/1.1\r\n\r\n"


@contextlib.contextmanager
def connected() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(edge side, hub side) of a loopback TCP connection whose head the hub already read."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        edge = socket.create_connection(server.getsockname())
        hub, _ = server.accept()
    with edge, hub:
        edge.sendall(HEAD)
        assert hub.recv(len(HEAD), socket.MSG_WAITALL) == HEAD
        yield edge, hub


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected() pair for one test."""
    with connected() as sockets:
        yield sockets


def settle(direct: DirectSocket, count: int) -> None:
    wait_for(lambda: direct.received() >= count, 5, f"{count} bytes to arrive")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=5000), max_size=12), st.booleans())
def test_received_counts_exactly_the_stream_after_the_head(pieces, half_close):
    with connected() as (edge, hub):
        with DirectSocket.take(hub) as direct:
            for piece in pieces:
                edge.sendall(piece)
            total = sum(map(len, pieces))
            if half_close:  # the FIN takes a sequence number: it must not count as a byte
                edge.shutdown(socket.SHUT_WR)
                wait_for(lambda: direct.peer_state() == "closed" or direct.queued(), 5, "the FIN")
            settle(direct, total)
            assert direct.received() == total and direct.queued() == total
            assert direct.delivered() == 0
            data = b"".join(pieces)
            assert direct.peek() == data  # peeking takes nothing
            assert direct.discard(min(7, total)) == min(7, total)
            assert direct.delivered() == min(7, total) and direct.peek() == data[7:]


def test_acks_never_block_even_on_a_blocking_socket_the_peer_never_reads(pair):
    edge, hub = pair
    with DirectSocket.take(hub) as direct:
        direct.hand_over()  # blocking now, for ffmpeg
        line = b'{"durable_pts":12.000011111111111}\n'
        # far more than the window takes: a send that waited would hang here for ever
        results = [direct.send_line(line) for _ in range(200_000)]
        assert results[0] and not results[-1], "the window filled"
        assert direct._waiting == line and len(direct._begun) < len(line), "one line kept"
        edge.close()  # the peer goes away: a clear error, not a hang

        def refused() -> bool:
            try:
                direct.send_line(line)
            except OSError:
                return True
            return False

        wait_for(refused, 10, "a send to fail once the peer is gone")


def test_end_input_gives_a_blocked_reader_what_is_queued_then_the_end(pair):
    edge, hub = pair
    direct = DirectSocket.take(hub)
    got: list[bytes] = []

    def ffmpeg_like_reader() -> None:  # blocking reads, as ffmpeg's pipe: protocol does
        while data := os.read(fd, 65536):
            got.append(data)

    try:
        fd = direct.hand_over()
        direct.set_rate(10_000_000)  # a mark far above what comes: the reader sleeps
        edge.sendall(b"x" * 1000)
        reader = threading.Thread(target=ffmpeg_like_reader, daemon=True)
        reader.start()
        settle(direct, 1000)
        assert not got
        direct.end_input()
        reader.join(5)
        assert not reader.is_alive(), "end_input woke the reader with the end of input"
        assert b"".join(got) == b"x" * 1000
    finally:
        direct.close()


def test_a_read_waits_for_the_mark_and_the_next_read_takes_a_lower_one(pair):
    # How Linux holds a read (what the hub's batching relies on): a read takes what is queued,
    # then sleeps until the bytes queued *since* reach the mark, so one read may take up to
    # twice the mark; its mark is fixed when it starts, and the next read takes a lower one.
    edge, hub = pair
    got: list[bytes] = []
    with DirectSocket.take(hub) as direct:
        fd = direct.hand_over()

        def read_twice() -> None:
            got.append(os.read(fd, LOWAT_MAX))
            direct.set_rate(2000)  # the hub lowered it meanwhile: the mark is 1,000 bytes
            got.append(os.read(fd, LOWAT_MAX))

        direct.set_rate(40_000)  # a mark of 20,000 bytes
        assert hub.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 20_000
        edge.sendall(b"a" * 5000)
        settle(direct, 5000)
        reader = threading.Thread(target=read_twice, daemon=True)
        reader.start()
        try:
            wait_for(lambda: direct.queued() == 0, 10, "the read to take what was queued")
            edge.sendall(b"b" * 15_000)
            settle(direct, 20_000)
            reader.join(0.3)
            assert not got, "5,000 taken and 15,000 queued since: the read still sleeps"
            edge.sendall(b"c" * 5000)
            wait_for(lambda: got, 10, "the first read")
            assert got == [b"a" * 5000 + b"b" * 15_000 + b"c" * 5000]
            edge.sendall(b"z" * 1500)
            reader.join(10)
            assert got[1] == b"z" * 1500
        finally:
            direct.end_input()  # a reader still waiting gets the end: no thread outlives the test
            reader.join(10)


def test_peer_state_tells_open_closed_and_reset(pair):
    edge, hub = pair
    with DirectSocket.take(hub) as direct:
        assert direct.peer_state() == "open"
        edge.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        edge.close()  # linger 0: a reset
        wait_for(lambda: direct.peer_state() != "open", 5, "the reset")
        with contextlib.suppress(OSError):
            hub.recv(1)  # ffmpeg's read takes the error: the state still says reset
        assert direct.peer_state() == direct.peer_state() == "reset"


def test_peer_state_tells_a_half_close(pair):
    edge, hub = pair
    with DirectSocket.take(hub) as direct:
        edge.sendall(b"tail")
        edge.shutdown(socket.SHUT_WR)
        wait_for(lambda: direct.peer_state() == "closed", 5, "the FIN")
        assert direct.received() == 4


def test_live_hints_go_out_before_a_waiting_ack(pair):
    edge, hub = pair
    with DirectSocket.take(hub) as direct:
        assert direct.send_live(True) and direct.send_line(b'{"durable_pts":1.0}\n')
        assert direct.send_live(False)
        edge.settimeout(5)
        received = b""
        while received.count(b"\n") < 3:
            received += edge.recv(4096)
        assert received == b'{"live":true}\n{"durable_pts":1.0}\n{"live":false}\n'
