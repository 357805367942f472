"""Two real hubs and one web app on one PostgreSQL catalog (issue 10, "Past one box").

Each hub records its own cameras into its own storage; the web app lists and plays both
hubs' footage (the second hub's storage reached through ``storage_mounts``, as an NFS mount
would be), and its commands reach the hub that records the camera.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from flask import Flask
from sqlalchemy import update

from nvrlib.catalog.models import Camera, Hub as HubRow, Segment, utcnow
from tests.support.postgres import (
    create_database, postgres_available, postgres_cluster, postgres_unavailable_reason,
)
from tests.support.procs import Hub, ffmpeg_pusher, running, wait_for
from tests.support.requirements import require
from tests.webapp.helpers import FAST_ARGON2, dispose
from webapp import create_app
from webapp.extensions import db
from webapp.models import ROLE_ADMIN, User

require(None if postgres_available() else f"PostgreSQL: {postgres_unavailable_reason()}",
        module_level=True)

pytestmark = pytest.mark.e2e


@pytest.fixture
def catalog_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback, and one database in it for every process."""
    with postgres_cluster("nvr") as url:
        yield create_database(url, "shared")


def footage(url: str) -> dict[str, tuple[str, str, int]]:
    """Per camera: its hub, the hub of its segments (all of them) and how many there are."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Camera.name, Camera.hub_id, Segment.hub_id, Segment.path)
                                .join(Segment, Segment.camera_id == Camera.id)).all()
    finally:
        engine.dispose()
    result: dict[str, tuple[str, str, int]] = {}
    for name, camera_hub, segment_hub, _path in rows:
        _hub, hubs, count = result.get(name, (camera_hub, "", 0))
        result[name] = (camera_hub, segment_hub if hubs in ("", segment_hub) else "mixed", count + 1)
    return result


def web_app(catalog_url: str, own_storage: Path, mounts: list[Path], folder: Path
            ) -> tuple[Flask, dict[str, str]]:
    """The web app on the shared catalog: hub a's storage is its own, the others are mounts;
    an admin with an API token (its Authorization header is returned)."""
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": catalog_url, "STORAGE_ROOT": str(own_storage),
        "STORAGE_MOUNTS": tuple(str(m) for m in mounts),
        "USERS_DB_URL": f"sqlite:///{folder / 'users.db'}", "SECRET_KEY": "e2e-secret",
        "ARGON2_PARAMETERS": FAST_ARGON2, "TESTING": True})
    with app.app_context():
        admin = User(username="alice", role=ROLE_ADMIN, created_at=utcnow())
        admin.set_password("admin-password-123")
        token = admin.new_api_token(utcnow())
        db.session.add(admin)
        db.session.commit()
    return app, {"Authorization": f"Bearer {token}"}


def test_two_hubs_record_into_one_postgresql_catalog_and_one_web_app_plays_and_controls_both(
        hub_factory, catalog_url: str, tmp_path: Path) -> None:
    hubs: dict[str, Hub] = {}
    for hub_id in ("a", "b"):
        hub = hub_factory(name=hub_id, config=f'hub_id = "{hub_id}"\n')
        hub.db_url = catalog_url
        hubs[hub_id] = hub.start()
    a, b = hubs["a"], hubs["b"]
    porch, yard = ffmpeg_pusher(a.url("porch")), ffmpeg_pusher(b.url("yard"))
    with running(porch, yard):
        wait_for(lambda: all(footage(catalog_url).get(c, ("", "", 0))[2] >= 2
                             for c in ("porch", "yard")), 30, "two segments of each camera")
        seen = footage(catalog_url)
        assert seen["porch"][:2] == ("a", "a") and seen["yard"][:2] == ("b", "b"), seen
        assert any(a.storage.glob("porch/*/*.ts")) and not any(a.storage.glob("yard/*/*.ts"))
        assert any(b.storage.glob("yard/*/*.ts")) and not any(b.storage.glob("porch/*/*.ts"))

        # a's camera pushed to b: refused, a keeps it
        thief = ffmpeg_pusher(b.url("porch"), seconds=2)
        with running(thief):
            thief.proc.wait(30)
        assert "camera porch records on hub a" in b.output
        assert footage(catalog_url)["porch"][:2] == ("a", "a")

        engine = create_engine(catalog_url)
        try:
            with engine.connect() as conn:
                registered = {row.id: row for row in conn.execute(select(HubRow))}
        finally:
            engine.dispose()
        assert registered["a"].storage_root == str(a.storage.resolve())
        assert registered["b"].storage_root == str(b.storage.resolve())
        assert registered["a"].storage_id != registered["b"].storage_id
        # hub b is on "another machine": the path it registered means nothing here, and the
        # web app reaches its storage through a mount (a symlink stands in for NFS)
        engine = create_engine(catalog_url)
        try:
            with engine.begin() as conn:
                conn.execute(update(HubRow).where(HubRow.id == "b")
                             .values(storage_root="/srv/on-machine-2/recordings"))
        finally:
            engine.dispose()
        mount = tmp_path / "mnt-nvr-b"
        mount.symlink_to(b.storage, target_is_directory=True)
        app, bearer = web_app(catalog_url, a.storage, [mount], tmp_path)
        try:
            check_the_web_app(app, bearer, a, b)
        finally:
            dispose(app)
    for hub in (a, b):
        assert hub.stop() == 0, hub.output[-3000:]


def check_the_web_app(app: Flask, bearer: dict[str, str], a: Hub, b: Hub) -> None:
    """Lists both hubs' cameras, plays both hubs' footage, sends each command to its hub."""
    client = app.test_client()
    cameras = {c["name"]: c for c in client.get("/api/v1/cameras", headers=bearer).get_json()}
    assert (cameras["porch"]["hub"], cameras["yard"]["hub"]) == ("a", "b")
    for camera, hub in (("porch", a), ("yard", b)):
        [recording] = client.get(f"/api/v1/recordings?camera={camera}&limit=1",
                                 headers=bearer).get_json()
        with client.get(f"/api/v1/recordings/{recording['id']}/segment.ts",
                        headers=bearer) as response:
            assert response.status_code == 200, response.get_data(as_text=True)
            assert response.data[:1] == b"\x47" and len(response.data) == recording["size"]
        with client.get(f"/api/v1/export/{camera}.mp4?start={recording['start']}"
                        f"&end={recording['end']}", headers=bearer) as exported:
            assert exported.status_code == 200 and exported.data[4:8] == b"ftyp", camera
        # the file came from that hub's own storage
        assert any(hub.storage.glob(f"{camera}/*/*.ts"))
    # each command is carried out by the hub that records the camera, and answered by it
    for camera, hub, other in (("porch", a, b), ("yard", b, a)):
        response = client.post(f"/api/v1/cameras/{camera}/restart", headers=bearer)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["result"] == "ok: ffmpeg restarted", response.get_json()
        assert f"command restart {camera}" in hub.output
        assert f"command restart {camera}" not in other.output
    health = client.get("/api/v1/health", headers=bearer).get_json()
    assert {h["id"] for h in health["hubs"]} == {"a", "b"}, health
    # a camera whose muxer was just restarted may count as offline until its hub next reports
    wait_for(lambda: client.get("/api/v1/health", headers=bearer).get_json()["status"] == "ok",
             30, "both hubs healthy after the restarts", interval=0.5)

