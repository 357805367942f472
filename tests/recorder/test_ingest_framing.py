"""Property: whatever bytes arrive on the ingest port, in whatever pieces, the hub answers a
clear 4xx or relays exactly the request body, and never crashes (real sockets, real h11)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recorder.ingest import server
from recorder.ingest.guard import IngestLimits
from recorder.ingest.server import IngestRequest, StreamEnding
from tests.support import aio
from tests.support.framing import chunk_payloads, split_at

NAME_FIRST = "abcxyzABC019"
NAME_REST = NAME_FIRST + "_.-"


@dataclasses.dataclass
class Sink:
    """Collects what the relay hands to a camera's segmenter."""

    data: bytearray = dataclasses.field(default_factory=bytearray)
    finished: bool = False
    batch_seconds: float | None = None  # relayed in batches, as an unwatched camera

    async def feed(self, data: bytes) -> None:
        self.data += data

    async def finish(self) -> None:
        self.finished = True


class Handler:
    """A hub that admits every camera and remembers how each connection ended."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.endings: list[StreamEnding] = []

    def precheck(self, request: IngestRequest) -> None:
        pass

    async def admit(self, request: IngestRequest) -> Sink:
        self.sinks.append(Sink())
        return self.sinks[-1]

    def release(self, camera: str, sink: Sink, ending: StreamEnding) -> None:
        self.endings.append(ending)

    def segments_of(self, sink: Sink) -> int:
        return 0

    def bytes_of(self, sink: Sink) -> int:
        return len(sink.data)


@dataclasses.dataclass
class Outcome:
    answer: bytes
    handler: Handler
    loop_errors: list[dict]

    @property
    def status(self) -> int | None:
        """The final status of the answer (after any 100 Continue), None if none came."""
        answer = self.answer
        while answer.startswith(b"HTTP/1.1 1"):
            answer = answer.split(b"\r\n\r\n", 1)[1]
        if not answer:
            return None
        assert answer.startswith(b"HTTP/1.1 "), self.answer[:80]
        return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module", autouse=True)
def no_batch_wait() -> Iterator[None]:
    """The relay waits 0.5 s per batch to save the hub's CPU; examples need no such wait."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "BATCH_SECONDS", 0.0)
        yield


async def _exchange(pieces: list[bytes]) -> Outcome:
    handler, errors = Handler(), []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    listener = await server.start_server(handler, "127.0.0.1", 0, 2.0, lambda _task: None,
                                         IngestLimits(head_timeout=2.0))
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
            writer.write_eof()
        except ConnectionError:
            pass  # the hub answered and closed before reading everything
        async with asyncio.timeout(10):
            answer = await _read_to_end(reader)
        writer.close()
    finally:
        listener.close()
        await listener.wait_closed()
    await asyncio.sleep(0)  # let the connection's task finish its release()
    return Outcome(answer, handler, errors)


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    answer = b""
    while True:
        try:
            data = await reader.read(65536)
        except ConnectionError:
            return answer
        if not data:
            return answer
        answer += data


def exchange(wire: bytes, cuts: list[int]) -> Outcome:
    """Send ``wire`` cut at ``cuts`` to a real ingest server, then EOF; collect the outcome."""
    return aio.run(_exchange(split_at(wire, cuts)))


camera_names = st.builds(lambda first, rest: first + rest, st.sampled_from(NAME_FIRST),
                         st.text(NAME_REST, max_size=20)).filter(lambda n: ".." not in n)


@st.composite
def ts_bodies(draw: st.DrawFn) -> bytes:
    """A body that starts with MPEG-TS packets (what the hub checks before admitting)."""
    count = draw(st.integers(3, 12))
    packets = [b"\x47" + draw(st.binary(min_size=187, max_size=187)) for _ in range(count)]
    return b"".join(packets) + draw(st.binary(max_size=200))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid ingest request (chunked or with a Content-Length) and its body."""
    body = draw(ts_bodies())
    camera = draw(camera_names)
    method = draw(st.sampled_from(["POST", "PUT"]))
    path = draw(st.sampled_from([f"/ingest/v1/{camera}", f"/ingest/{camera}"]))
    lines = [f"{method} {path} HTTP/1.1", "Host: hub", "Content-Type: video/mp2t"]
    lines += draw(st.lists(st.sampled_from(["X-NVR-Location: yard", "Authorization: Bearer x",
                                            "X-NVR-Mode: live", "Expect: 100-continue",
                                            "X-NVR-Stream-Epoch: 1795467600.25"]),
                           unique=True, max_size=5))
    if draw(st.booleans()):
        lines.append(f"Content-Length: {len(body)}")
        encoded = body
    else:
        lines.append("Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 700), max_size=20))
        encoded = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                           for piece in chunk_payloads(body, sizes)) + b"0\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + encoded, body


FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(request=requests(), cuts=st.lists(st.integers(0, 5000), max_size=15))
def test_a_valid_request_in_any_pieces_relays_exactly_its_body(request, cuts) -> None:
    wire, body = request
    outcome = exchange(wire, cuts)
    assert outcome.loop_errors == []
    (sink,) = outcome.handler.sinks
    assert bytes(sink.data) == body and sink.finished
    assert outcome.handler.endings == [StreamEnding("clean_shutdown", "the edge ended its stream")]
    assert outcome.answer.endswith(b'"bytes": %d}\n' % len(body))
    assert b"HTTP/1.1 200 " in outcome.answer


@FAST
@given(request=requests(), cut_at=st.integers(0, 5000), cuts=st.lists(st.integers(0, 5000)))
def test_a_request_cut_short_relays_a_prefix_of_its_body_or_gets_a_4xx(request, cut_at,
                                                                        cuts) -> None:
    wire, body = request
    assume(cut_at < len(wire))
    outcome = exchange(wire[:cut_at], cuts)
    assert outcome.loop_errors == []
    for sink in outcome.handler.sinks:
        assert body.startswith(bytes(sink.data)) and sink.finished
    if outcome.handler.sinks:  # the peer vanished mid-stream: nothing to answer to
        assert [e.reason for e in outcome.handler.endings] == ["connection_lost"]
    elif cut_at:
        assert 400 <= outcome.status < 500, outcome.answer[:200]


@FAST
@given(wire=st.one_of(
    st.binary(min_size=1, max_size=3000),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"POST /ingest/v1/cam HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n",
                               b"POST /ingest/v1/cam HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                               b"Host: h\r\n\r\n", b"PUT /ingest/.. HTTP/1.0\r\n\r\n"]),
              st.binary(max_size=2000))),
    cuts=st.lists(st.integers(0, 5000), max_size=10))
def test_arbitrary_bytes_get_a_clear_4xx_and_never_crash_the_hub(wire, cuts) -> None:
    outcome = exchange(wire, cuts)
    assert outcome.loop_errors == []
    if outcome.handler.sinks:  # by chance a valid head and TS start: relayed, never invented
        (sink,) = outcome.handler.sinks
        assert bytes(sink.data) in wire and sink.finished
    else:
        assert outcome.status is not None and 400 <= outcome.status < 500, outcome.answer[:200]
