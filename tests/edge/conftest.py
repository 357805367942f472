"""Fixtures for the edge tests: ingest servers that are always stopped, and a small video."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.edge.fakehub import VIDEO_FPS, VIDEO_FRAMES, IngestServer


@pytest.fixture
def ingest_server(tmp_path: Path) -> Iterator[Callable[..., IngestServer]]:
    """Start ingest servers on demand; every one is stopped at the end of the test."""
    servers: list[IngestServer] = []

    def start(**kwargs: object) -> IngestServer:
        server = IngestServer(tmp_path, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 15 fps, 320x240 H.264 MP4 with a moving square."""
    path = tmp_path_factory.mktemp("media") / "front door.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(VIDEO_FRAMES):
            image = np.zeros((240, 320, 3), np.uint8)
            image[100:140, i * 8 : i * 8 + 40] = 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, VIDEO_FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
