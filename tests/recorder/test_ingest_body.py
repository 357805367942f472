"""The ingest body decoders agree with h11 on every framing, fed in any pieces (hypothesis)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.ingest.body import BodyError, ChunkedDecoder, LengthDecoder, chunk_size
from tests.support.framing import chunk_payloads, split_at

HEAD = b"POST /ingest/v1/cam HTTP/1.1\r\nHost: hub\r\nTransfer-Encoding: chunked\r\n\r\n"


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A chunked encoding (with extensions and trailers sometimes) and the body it carries."""
    body = draw(st.binary(max_size=3000))
    sizes = draw(st.lists(st.integers(1, 900), max_size=12))
    wire = b""
    for piece in chunk_payloads(body, sizes):
        digits = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(len(piece))
        ext = draw(st.sampled_from(["", ";a=b", ";name", ";x=\"1\""]))
        wire += f"{digits}{ext}\r\n".encode() + piece + b"\r\n"
    wire += b"0\r\n"
    wire += b"".join(draw(st.lists(st.sampled_from([b"X-T: 1\r\n", b"Etag: x\r\n"]),
                                   max_size=3)))
    return wire + b"\r\n", body


def h11_body(wire: bytes) -> tuple[bytes, bool]:
    """What h11 makes of a chunked body: its payload and whether it ended."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(HEAD + wire)
    assert isinstance(conn.next_event(), h11.Request)
    out = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            out += bytes(event.data)
        else:
            return out, isinstance(event, h11.EndOfMessage)


@settings(max_examples=300, deadline=None)
@given(encoded=chunked_bodies(), cuts=st.lists(st.integers(0, 6000), max_size=20))
def test_a_chunked_body_in_any_pieces_decodes_to_its_payload(encoded, cuts) -> None:
    wire, body = encoded
    decoder = ChunkedDecoder()
    out = b"".join(decoder.feed(piece) for piece in split_at(wire + b"NEXT", cuts))
    assert out == body
    assert decoder.ended
    assert h11_body(wire) == (body, True)


@settings(max_examples=300, deadline=None)
@given(encoded=chunked_bodies(), cut_at=st.integers(0, 6000),
       cuts=st.lists(st.integers(0, 6000), max_size=10))
def test_a_chunked_body_cut_short_gives_a_prefix_like_h11(encoded, cut_at, cuts) -> None:
    wire, body = encoded
    short = wire[:cut_at]
    decoder = ChunkedDecoder()
    out = b"".join(decoder.feed(piece) for piece in split_at(short, cuts))
    assert body.startswith(out)
    assert (out, decoder.ended) == h11_body(short)


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_garbage_is_a_body_error_or_a_prefix_never_a_crash(garbage, cuts) -> None:
    decoder = ChunkedDecoder()
    try:
        for piece in split_at(garbage, cuts):
            decoder.feed(piece)
    except BodyError:
        pass


@pytest.mark.parametrize("line", [b"", b"x", b"-1", b"0x10", b"1 2", b"1" * 17, b";ext"])
def test_a_bad_chunk_size_line_is_refused(line: bytes) -> None:
    with pytest.raises(BodyError):
        chunk_size(line)


def test_an_endless_chunk_line_is_refused_before_it_fills_memory() -> None:
    decoder = ChunkedDecoder()
    decoder.feed(b"1" * 4000)
    with pytest.raises(BodyError):
        decoder.feed(b"1" * 200)


@given(body=st.binary(max_size=2000), extra=st.binary(max_size=100),
       cuts=st.lists(st.integers(0, 2100), max_size=10))
def test_a_length_body_stops_at_its_length(body, extra, cuts) -> None:
    decoder = LengthDecoder(len(body))
    out = b"".join(decoder.feed(piece) for piece in split_at(body + extra, cuts))
    assert out == body and decoder.ended
