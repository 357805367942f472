"""Where the web app finds each hub's storage: markers, storage_mounts, the fallback, the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from nvrlib.catalog.models import Hub
from webapp import hub_storage
from webapp.extensions import db
from webapp.hub_storage import MARKER_FILE, HubInfo, StorageUnreachable, resolve


def storage(folder: Path, storage_id: str | None) -> Path:
    """Make a storage folder, with a marker holding ``storage_id`` unless it is None."""
    folder.mkdir(parents=True, exist_ok=True)
    if storage_id is not None:
        (folder / MARKER_FILE).write_text(storage_id + "\n", encoding="ascii")
    return folder


def test_a_hub_is_found_in_the_mount_that_holds_its_marker(tmp_path: Path) -> None:
    own = storage(tmp_path / "own", "id-main")
    other = storage(tmp_path / "mnt-b", "id-b")
    found = resolve([HubInfo("main", "id-main", "/srv/nvr"), HubInfo("b", "id-b", "/srv/nvr")],
                    [own, storage(tmp_path / "mnt-c", "id-c"), other])
    assert found.root("main") == own and found.root("b") == other
    assert found.unreachable == {}


def test_a_hub_is_found_where_it_keeps_its_storage_when_no_mount_holds_it(tmp_path: Path) -> None:
    # the same machine, or an NFS mount at the same path as on the hub
    own = storage(tmp_path / "own", "id-main")
    there = storage(tmp_path / "srv-b", "id-b")
    found = resolve([HubInfo("b", "id-b", str(there))], [own])
    assert found.root("b") == there


def test_a_hub_whose_storage_is_nowhere_is_unreachable_with_what_to_configure(
        tmp_path: Path) -> None:
    own = storage(tmp_path / "own", "id-main")
    wrong = storage(tmp_path / "srv-b", "id-other")  # its path holds another storage
    found = resolve([HubInfo("main", "id-main", ""), HubInfo("b", "id-b", str(wrong))], [own])
    assert found.root("main") == own
    with pytest.raises(StorageUnreachable) as caught:
        found.root("b")
    message = str(caught.value)
    assert caught.value.hub_id == "b"
    assert "hub b" in message and "storage_mounts" in message and "id-b" in message
    assert str(own) in message


def test_a_hub_that_never_registered_its_storage_is_unreachable(tmp_path: Path) -> None:
    found = resolve([HubInfo("b", None, "")], [storage(tmp_path / "own", None)])
    with pytest.raises(StorageUnreachable, match="has not registered its storage"):
        found.root("b")
    with pytest.raises(StorageUnreachable, match="no hub of that id"):
        found.root("nobody")


@pytest.mark.parametrize(("hubs", "own_marker"), [
    ([], None),  # no hub registered yet: an older catalog
    ([], "id-main"),
    ([HubInfo("main", None, "")], None),  # registered before it wrote a marker
    ([HubInfo("main", "id-main", "/elsewhere")], None),  # the marker is missing here
])
def test_hub_main_falls_back_to_the_web_apps_own_storage(tmp_path: Path, hubs: list[HubInfo],
                                                         own_marker: str | None) -> None:
    own = storage(tmp_path / "own", own_marker)
    found = resolve(hubs, [own])
    assert found.root("main") == own and "main" not in found.unreachable


def test_hub_main_is_not_read_from_a_storage_that_is_another_hubs(tmp_path: Path) -> None:
    own = storage(tmp_path / "own", "id-b")  # the web app runs beside hub b
    found = resolve([HubInfo("main", "id-main", "/srv/main"), HubInfo("b", "id-b", "")], [own])
    assert found.root("b") == own
    with pytest.raises(StorageUnreachable):
        found.root("main")


def test_candidates_are_the_own_storage_then_each_mount_once(tmp_path: Path) -> None:
    config = {"STORAGE_ROOT": str(tmp_path / "own"),
              "STORAGE_MOUNTS": (str(tmp_path / "b"), str(tmp_path / "own"), str(tmp_path / "b"))}
    assert hub_storage.candidate_folders(config) == [tmp_path / "own", tmp_path / "b"]


def register(app: Flask, *hubs: tuple[str, str | None, str]) -> None:
    """Register hubs as they do when they start: (id, storage id, storage root)."""
    with app.app_context():
        for hub_id, storage_id, root in hubs:
            db.session.add(Hub(id=hub_id, storage_id=storage_id, storage_root=root))
        db.session.commit()


def test_the_answer_is_cached_until_it_expires(make_app: Callable[..., Flask],
                                               tmp_path: Path) -> None:
    mount = storage(tmp_path / "mnt-b", "id-b")
    app = make_app(STORAGE_MOUNTS=[str(mount)])
    register(app, ("b", "id-b", "/srv/nvr"))
    with app.test_request_context():
        assert hub_storage.storage_root("b") == mount
        (mount / MARKER_FILE).unlink()  # the mount went away
        assert hub_storage.storage_root("b") == mount  # no marker read within 30 s
        hub_storage.forget()
        assert not hub_storage.is_reachable("b")
        assert "hub b" in (hub_storage.unreachable_message("b") or "")


def test_with_no_cache_every_request_reads_the_markers(make_app: Callable[..., Flask],
                                                       tmp_path: Path) -> None:
    mount = storage(tmp_path / "mnt-b", None)
    app = make_app(STORAGE_MOUNTS=[str(mount)], HUB_STORAGE_CACHE_SECONDS=0)
    register(app, ("b", "id-b", "/srv/nvr"))
    with app.test_request_context():
        assert not hub_storage.is_reachable("b")
        storage(mount, "id-b")  # mounted now
        assert hub_storage.storage_root("b") == mount
        assert hub_storage.unreachable_message("b") is None
