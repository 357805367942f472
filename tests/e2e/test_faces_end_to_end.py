"""Faces from the camera to the web app's events (docs/design/faces.md section 6, the one slow
face test): a real hub, a real `python -m webapp serve` on its catalog and storage, and a real
edge with `--faces` playing a scene (background, Obama, background, Biden). Obama is enrolled
from `obama2.jpg` through the web app's People API before the edge starts; then
`GET /api/v1/events?type=face` lists a sighting named Obama at the place he was pasted and an
unknown one (Biden) at his; each crop URL serves a JPEG, and the play link's time has footage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.face_photos import missing_reason, photos_dir
from tests.support.media import segments
from tests.support.procs import ROOT, Hub, LoggedProcess, free_port, running, wait_for
from tests.support.requirements import require
from tests.webapp.helpers import FAST_ARGON2, api_token_user, dispose
from webapp import create_app
from webapp.models import ROLE_ADMIN

pytestmark = pytest.mark.e2e

TOKEN = "faces-e2e-token"
CAMERA = "porch"
WIDTH, HEIGHT, FPS = 640, 360, 10  # small and slow: a 2-core machine runs all three processes
BACKGROUND = 90  # grey
# Where each face is pasted: (photo, the square of the photo around its face (x, y, side), and the
# place in the frame (x, y, side)). The photos' face boxes, found by FaceEngine: obama.jpg
# (373, 156, 246, 245), biden.jpg (444, 235, 314, 314); each square scaled to 300 px makes a
# face of ~120-130 px.
OBAMA = ("obama.jpg", (246, 30, 500), (40, 30, 300))
BIDEN = ("biden.jpg", (301, 92, 600), (330, 30, 300))
# the scene, in seconds: background, Obama, background, Biden (then it loops)
SCENE = (("background", 2), ("obama", 4), ("background", 2), ("biden", 4))
WAIT = 90.0  # for both sightings: the worker's start (dlib, models) on a loaded machine


def pasted(photo: str, square: tuple[int, int, int], place: tuple[int, int, int]) -> np.ndarray:
    """A background frame with a square of the photo around its face scaled into ``place``."""
    sx, sy, side = square
    x, y, size = place
    image = cv2.imread(str(photos_dir() / photo))
    frame = np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8)
    frame[y:y + size, x:x + size] = cv2.resize(image[sy:sy + side, sx:sx + side], (size, size),
                                               interpolation=cv2.INTER_AREA)
    return frame


def make_scene(folder: Path) -> Path:
    """SCENE as H.264 (ffmpeg's concat filter over looped PNGs, as faces.md section 6 shows)."""
    pictures = {"background": np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8),
                "obama": pasted(*OBAMA), "biden": pasted(*BIDEN)}
    inputs: list[str] = []
    for name, seconds in SCENE:
        path = folder / f"{name}.png"
        cv2.imwrite(str(path), pictures[name])
        inputs += ["-loop", "1", "-t", str(seconds), "-i", str(path)]
    labels = "".join(f"[{i}]" for i in range(len(SCENE)))
    scene = folder / "scene.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *inputs,
                    "-filter_complex", f"{labels}concat=n={len(SCENE)}:v=1:a=0,format=yuv420p",
                    "-r", str(FPS), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS),
                    str(scene)], check=True, timeout=120)
    return scene


@dataclasses.dataclass
class Api:
    """The web app's API on 127.0.0.1 with an admin's API token."""

    base: str
    token: str

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = None) -> tuple[int, str, bytes]:
        """One request; the status, the content type and the body (4xx/5xx too)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=body, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers.get("Content-Type", ""), error.read()

    def json(self, method: str, path: str, payload: Any = None, expect: int = 200) -> Any:
        """A JSON request that must answer ``expect``; its JSON answer."""
        body = None if payload is None else json.dumps(payload).encode()
        status, _, data = self.request(method, path, body,
                                       "application/json" if body is not None else None)
        assert status == expect, (method, path, status, data[:500])
        return json.loads(data)

    def upload(self, path: str, field: str, filename: str, data: bytes) -> tuple[int, Any]:
        """POST one file as multipart/form-data; the status and the JSON answer."""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() \
            + data + f"\r\n--{boundary}--\r\n".encode()
        status, _, answer = self.request("POST", path, body,
                                         f"multipart/form-data; boundary={boundary}")
        return status, json.loads(answer)


def admin_token(hub: Hub, users_db: str) -> str:
    """An admin with an API token in the users database the served web app then opens."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": hub.db_url, "STORAGE_ROOT": str(hub.storage),
                      "USERS_DB_URL": users_db, "SECRET_KEY": "faces-e2e",
                      "ARGON2_PARAMETERS": FAST_ARGON2})
    try:
        return api_token_user(app, "admin", ROLE_ADMIN)
    finally:
        dispose(app)


@pytest.fixture
def web(hub_factory, tmp_path: Path) -> Iterator[tuple[Hub, Api, LoggedProcess]]:
    """A running hub, and `python -m webapp serve` on its catalog and storage; both stopped."""
    hub = hub_factory(config=f'ingest_token = "{TOKEN}"\n', segment_seconds=2).start()
    users_db = f"sqlite:///{tmp_path / 'users.db'}"
    token = admin_token(hub, users_db)
    port = free_port()
    server = LoggedProcess([sys.executable, "-m", "webapp", "serve", "--host", "127.0.0.1",
                            "--port", str(port), "--db", hub.db_url, "--storage",
                            str(hub.storage), "--users-db", users_db, "--threads", "4"],
                           cwd=ROOT)
    with running(server):
        server.wait_line(r"web app listening on http://127\.0\.0\.1", timeout=60)
        yield hub, Api(f"http://127.0.0.1:{port}", token), server


def start_edge(hub: Hub, scene: Path, spool: Path) -> LoggedProcess:
    """`python -m edge --faces` playing the scene to the hub (default rate and debounce)."""
    return LoggedProcess([sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port",
                          str(hub.port), "--token", TOKEN, "--camera", str(scene), "--name",
                          CAMERA, "--location", "front", "--fps", str(FPS), "--size",
                          f"{WIDTH}x{HEIGHT}", "--bitrate", "400k", "--spool-dir", str(spool),
                          "--faces", "--log-level", "DEBUG"], cwd=ROOT)


def within(box: dict[str, float], place: tuple[int, int, int]) -> bool:
    """Whether a sighting's box (0-1 of the frame) lies inside the pasted square."""
    x, y, size = place
    slack = 0.01  # the box is rounded to 4 decimals
    return (x / WIDTH - slack <= box["x"] and box["x"] + box["w"] <= (x + size) / WIDTH + slack
            and y / HEIGHT - slack <= box["y"]
            and box["y"] + box["h"] <= (y + size) / HEIGHT + slack)


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_footage_at(api: Api, hub: Hub, sighting: dict[str, Any]) -> None:
    """The play link's camera has footage from its start through the sighting's start."""
    link = urllib.parse.urlsplit(sighting["play"])
    query = urllib.parse.parse_qs(link.query)
    assert link.path == "/recordings/play" and query["camera"] == [CAMERA], sighting["play"]
    seen = parse_time(sighting["start"])
    assert dt.timedelta(0) < seen - parse_time(query["start"][0]) <= dt.timedelta(seconds=5)
    wait_for(lambda: any(s.start <= seen <= s.end for s in segments(hub.db_path, CAMERA)), 20,
             "the segment holding the sighting in the catalog")
    range_ = urllib.parse.urlencode({"start": query["start"][0], "end": sighting["start"]})
    status, kind, playlist = api.request("GET", f"/api/v1/playback/{CAMERA}.m3u8?{range_}")
    assert status == 200 and "mpegurl" in kind, (status, playlist[:300])
    assert b"#EXTINF" in playlist and b"segment.ts" in playlist, playlist[:500]


def test_a_face_seen_by_an_edge_is_named_listed_and_played_in_the_web_app(
        web: tuple[Hub, Api, LoggedProcess], tmp_path: Path) -> None:
    require(missing_reason(), remedy="fetch them with scripts/fetch-face-photos.sh")
    hub, api, server = web
    scene = make_scene(tmp_path)
    person = api.json("POST", "/api/v1/people", {"name": "Obama"}, expect=201)
    status, sample = api.upload(f"/api/v1/people/{person['id']}/photos", "photo", "obama2.jpg",
                                (photos_dir() / "obama2.jpg").read_bytes())
    assert status == 201, sample

    edge = start_edge(hub, scene, tmp_path / "spool")
    with running(edge):
        def both() -> list[dict[str, Any]] | None:
            found = api.json("GET", "/api/v1/events?type=face")
            named = [s for s in found if s["person"] == "Obama"]
            unknown = [s for s in found if s["person"] is None]
            return named[:1] + unknown[:1] if named and unknown else None

        try:
            obama, biden = wait_for(both, WAIT, "a sighting named Obama and an unknown one",
                                    interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- edge ---\n{edge.output[-4000:]}\n--- hub ---\n"
                                 f"{hub.output[-3000:]}") from None
        assert edge.proc.poll() is None, edge.output[-3000:]
    assert obama["camera"] == biden["camera"] == CAMERA
    assert obama["person_id"] == person["id"] and obama["distance"] < 0.6, obama
    assert biden["distance"] is None or biden["distance"] > 0.6, biden
    assert within(obama["box"], OBAMA[2]) and within(biden["box"], BIDEN[2]), (obama, biden)
    assert obama["size"] >= 80 and biden["size"] >= 80
    for sighting in (obama, biden):
        status, kind, crop = api.request("GET", sighting["crop"])
        assert status == 200 and kind == "image/jpeg" and crop[:3] == b"\xff\xd8\xff", status
        assert cv2.imdecode(np.frombuffer(crop, np.uint8), cv2.IMREAD_COLOR) is not None
    assert_footage_at(api, hub, obama)
    # one sighting of Obama (the edge's first gallery arrived while he was in view: his
    # unknown track became his sighting), found by the person filter too
    assert [s["id"] for s in api.json("GET", "/api/v1/events?type=face&person=obama")] \
        == [obama["id"]]
    assert obama["id"] not in {s["id"] for s in
                               api.json("GET", "/api/v1/events?type=face&person=unknown")}
    for process, name in ((edge, "edge"), (server, "web app")):
        assert "Traceback" not in process.output, f"{name}:\n{process.output[-3000:]}"
    assert "Traceback" not in hub.output, hub.output[-3000:]
