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

from nvrlib.catalog.models import Camera, Hub as HubRow, Segment
from tests.e2e.test_webapp_control import PASSWORD, WebApp
from tests.support.postgres import (
    create_database, postgres_available, postgres_cluster, postgres_unavailable_reason,
)
from tests.support.procs import Hub, ffmpeg_pusher, running, wait_for
from tests.support.requirements import require
from tests.webapp.helpers import dispose

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
    for hub in (a, b):
        assert hub.stop() == 0, hub.output[-3000:]
