"""Cutting bytes for property tests of the ingest framing: pieces on the wire, chunk payloads."""

from __future__ import annotations


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the offsets in ``cuts`` (out-of-range and repeated ones are ignored)."""
    bounds = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)])]


def chunk_payloads(body: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``body`` into chunk payloads of ``sizes``, the rest in one last chunk (none empty)."""
    payloads, at = [], 0
    for size in [*sizes, len(body)]:
        piece = body[at:at + size]
        at += len(piece)
        if piece:
            payloads.append(piece)
    return payloads
