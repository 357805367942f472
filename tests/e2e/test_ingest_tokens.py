"""Per-camera ingest tokens (made and revoked in the admin panel) and the unknown-camera policy,
against a real hub."""

from __future__ import annotations

import hashlib
import http.client
import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from nvrlib.catalog.models import IngestToken
from tests.e2e.test_webapp_control import WebApp
from tests.support.control import CatalogControl
from tests.support.media import encoded_ts, segments
from tests.support.procs import ffmpeg_pusher, running, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clip() -> bytes:
    """Two seconds of real H.264 in MPEG-TS."""
    return encoded_ts(2)


def push(port: int, camera: str, body: bytes, token: str | None = None) -> tuple[int, str]:
    """POST a whole body to the hub; return its status and answer."""
    headers = {"Content-Type": "video/mp2t", "Content-Length": str(len(body))}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/ingest/v1/{camera}", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except (ConnectionError, http.client.RemoteDisconnected):
        return 0, "connection closed"
    finally:
        conn.close()


def test_admin_panel_token_is_shown_once_stored_hashed_and_revocable(hub_factory, tmp_path: Path,
                                                                      clip: bytes):
    hub = hub_factory(config='ingest_token = "shared-secret"\n').start()
    web = WebApp(hub, tmp_path)
    client, csrf = web.session()
    page = client.post("/admin/tokens", data={"camera": "gate", "note": "gate edge",
                                              "csrf_token": csrf}).get_data(as_text=True)
    token = re.search(r"data-token>([^<]+)</code>", page).group(1)
    assert "data-token>" not in client.get("/admin/tokens").get_data(as_text=True)  # only once
    with sqlite3.connect(hub.db_path) as conn:
        stored = conn.execute("SELECT * FROM ingest_tokens").fetchall()
    assert len(stored) == 1 and not any(token in str(value) for value in stored[0])
    assert hashlib.sha256(token.encode()).hexdigest() in stored[0]
    token_id = stored[0][0]

    assert push(hub.port, "gate", clip, "wrong-token")[0] == 401
    # the web app nudged the hub (nvrlib/control_mark.py): it has the new token at once
    wait_for(lambda: push(hub.port, "gate", clip[:188 * 50], token)[0] == 200, 10,
             "the hub to take the new token")
    before = len(segments(hub.db_path, "gate"))
    pusher = ffmpeg_pusher(hub.url("gate"), token=token, size="320x240", rate=10)
    with running(pusher):
        wait_for(lambda: len(segments(hub.db_path, "gate")) > before, 30,
                 "the live pusher's footage with the token")
        client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
        hub.process.wait_line(r"gate: its ingest token was revoked: closing the stream", 10)
        assert pusher.proc.wait(20) != 0  # the running stream was cut
    wait_for(lambda: push(hub.port, "gate", clip, token)[0] == 401, 5, "401 after revocation")
    assert push(hub.port, "gate", clip, "shared-secret")[0] == 200  # the config token still works
    assert hub.stop() == 0


@pytest.mark.parametrize("policy, status", [("record", 200), ("approve", 403), ("refuse", 404)])
def test_unknown_camera_policy(hub_factory, clip: bytes, policy: str, status: int):
    hub = hub_factory(config=f'unknown_cameras = "{policy}"\n').start()
    answer = push(hub.port, "stranger", clip)
    assert answer[0] == status, answer
    with CatalogControl(hub) as catalog:
        camera = catalog.camera("stranger")
        if policy == "record":
            assert camera.approval == "approved"
            wait_for(lambda: catalog.alerts("stranger", "new_camera"), 10, "a new-camera alert")
        elif policy == "approve":
            assert camera.approval == "pending" and "awaiting an admin's approval" in answer[1]
        else:
            assert camera is None and 'unknown_cameras = "refuse"' in answer[1]
            # a name an admin made a token for is welcome all the same
            row, token = IngestToken.issue("stranger", "test")
            with Session(catalog.engine) as session, session.begin():
                session.add(row)
            wait_for(lambda: push(hub.port, "stranger", clip, token)[0] == 200, 10,
                     "the token's camera to be admitted")
    assert hub.stop() == 0
