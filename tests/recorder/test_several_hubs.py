"""Two hubs on one catalog: each touches only its own cameras, rows, commands and storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from nvrlib.catalog import db
from nvrlib.catalog.models import Camera, CameraStatus, Command, Hub, Segment, utcnow
from recorder import control
from recorder.errors import StorageMismatch
from recorder.health.outages import open_outages_after_crash
from recorder.store.catalog import Catalog
from recorder.store.identity import MARKER_FILE, check_storage_identity
from recorder.store.reconcile import reconcile
from recorder.store.storage import Storage
from tests.recorder.test_retention import NOW, FakeDisk, make


@pytest.fixture
def hubs(tmp_path) -> Iterator[tuple[Catalog, Catalog]]:
    """Hubs "a" and "b" on one SQLite catalog, each with a storage of its own, registered."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    db.upgrade(engine)
    a = Catalog(engine, Storage(tmp_path / "a"), "a")
    b = Catalog(engine, Storage(tmp_path / "b"), "b")
    for catalog in (a, b):
        check_storage_identity(catalog, catalog.storage, "127.0.0.1:1025")
    yield a, b
    engine.dispose()


def add_segment(catalog: Catalog, camera: str, start: dt.datetime, size: int = 1000) -> str:
    """A camera of ``catalog``'s hub with one segment file on its storage; return its path."""
    with catalog.sessions.begin() as session:
        camera_id = session.scalar(select(Camera.id).where(Camera.name == camera))
        if camera_id is None:
            row = Camera(name=camera, hub_id=catalog.hub_id)
            session.add(row)
            session.flush()
            camera_id = row.id
        path = catalog.storage.final_path(camera, start, "0123abcd", 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(size))
        relative = str(path.relative_to(catalog.storage.root))
        session.add(Segment(camera_id=camera_id, start_time=start, size_bytes=size,
                            end_time=start + dt.timedelta(seconds=10), duration=10.0,
                            path=relative, hub_id=catalog.hub_id))
    return relative


def statuses(catalog: Catalog) -> dict[str, str]:
    with catalog.session() as session:
        return dict(session.execute(select(Segment.path, Segment.status)).all())


def test_each_hub_registers_its_own_storage_and_neither_may_take_the_others(hubs, tmp_path):
    a, b = hubs
    with a.session() as session:
        registered = {hub.id: hub for hub in session.scalars(select(Hub))}
    assert set(registered) == {"a", "b"}
    for catalog in (a, b):
        marker = (catalog.storage.root / MARKER_FILE).read_text().strip()
        assert registered[catalog.hub_id].storage_id == marker
        assert registered[catalog.hub_id].storage_root == str(catalog.storage.root)
    with pytest.raises(StorageMismatch, match="is the storage of hub 'a'"):
        check_storage_identity(Catalog(a.engine, a.storage, "c"), a.storage)
    with pytest.raises(StorageMismatch, match="is the storage of hub 'b'"):
        check_storage_identity(Catalog(a.engine, b.storage, "a"), b.storage)


def test_a_hub_starting_sees_only_its_own_footage_missing(hubs):
    a, b = hubs
    kept = add_segment(a, "porch", NOW)
    gone = add_segment(b, "yard", NOW)
    (b.storage.root / gone).unlink()
    assert reconcile(a, a.storage).missing == []  # b's file is not on a's disk: not a's business
    assert reconcile(b, b.storage).missing == [gone]
    assert statuses(a) == {kept: "ok", gone: "missing"}


def test_a_hubs_retention_counts_and_deletes_only_its_own_footage(hubs):
    a, b = hubs
    old_b = add_segment(b, "yard", NOW - dt.timedelta(hours=2), size=5000)
    new_a = [add_segment(a, "porch", NOW - dt.timedelta(minutes=m), size=1000) for m in (3, 2)]
    retention = make(a, FakeDisk(a.storage.root, total=10**12), max_gb=1500 / 1e9)
    assert retention.footage_bytes() == 2000  # b's 5000 bytes are on another disk
    retention.run_pass()
    assert statuses(a) == {old_b: "ok", new_a[1]: "ok"}  # a's oldest went, b's older one stays


def test_a_hub_writes_only_its_own_status_rows_and_takes_only_its_own_commands(hubs):
    a, b = hubs
    add_segment(a, "porch", NOW)
    add_segment(b, "yard", NOW)
    with b.sessions.begin() as session:
        yard = session.scalar(select(Camera.id).where(Camera.name == "yard"))
        session.add(CameraStatus(camera_id=yard, state="running", online=True, kind="push",
                                 updated_at=utcnow()))
        session.add_all([Command(camera="porch", action="restart", hub_id="a"),
                         Command(camera="yard", action="restart", hub_id="b")])
    control.publish_status(a, [], control.RateMeter())  # a records nothing right now
    with a.session() as session:
        assert session.get(CameraStatus, yard).online  # b's camera is still b's to report
    assert [c.camera for c in control.take_commands(a)] == ["porch"]
    assert [c.camera for c in control.take_commands(b)] == ["yard"]


def test_a_hub_restarting_after_a_crash_opens_outages_only_for_its_own_cameras(hubs):
    a, b = hubs
    add_segment(b, "yard", NOW)
    with b.sessions.begin() as session:
        yard = session.scalar(select(Camera.id).where(Camera.name == "yard"))
        session.add(CameraStatus(camera_id=yard, online=True, updated_at=utcnow()))
    assert open_outages_after_crash(a, utcnow()) == []
    assert open_outages_after_crash(b, utcnow()) == ["yard"]


def test_another_hubs_camera_is_not_admitted_and_its_pulls_are_not_ours(hubs):
    a, b = hubs
    assert a.admission("porch", "", configured=False, allow_new=True) == "ok"
    assert b.admission("porch", "", configured=False, allow_new=True) == "hub:a"
    assert b.camera_verdict("porch") == "hub:a"
    with a.sessions.begin() as session:
        session.add(Camera(name="gate", kind="pull", url="rtsp://192.0.2.9/gate", hub_id="b"))
    assert control.database_pull_cameras(a) == []
    assert [c.name for c in control.database_pull_cameras(b)] == ["gate"]
    assert control.other_hubs_cameras(a) == {"gate": "b"}
