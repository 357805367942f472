"""Where each hub's storage is, seen from the web app: its own folder or a configured mount.

Several hubs may record into one catalog, each into a storage of its own; ``segments.path`` is
relative to the storage of the hub ``segments.hub_id``, and a camera's live files lie in the
storage of ``cameras.hub_id``. Every storage holds a marker file, ``.nvr-storage``, with a
random storage id (recorder/store/identity.py) that its hub registers in ``hubs.storage_id``.
The web app looks for each hub's marker in its candidate folders: its own ``storage``
(app.config STORAGE_ROOT) and each folder of ``storage_mounts`` (STORAGE_MOUNTS), then in the
hub's own ``hubs.storage_root`` (the same machine, or an NFS mount at the same path).

A catalog where no hub registered yet, or hub ``main``'s marker is missing (an older hub, one
that never started, tests), keeps working as before: hub ``main`` records into STORAGE_ROOT.
The answer is cached for HUB_STORAGE_CACHE_SECONDS (30 s), so a request reads no marker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from nvrlib import control_mark
from nvrlib.catalog.models import Hub
from nvrlib.names import DEFAULT_HUB
from recorder.store.storage import Storage

from . import media
from .catalog_queries import SegmentRow
from .extensions import db

logger = logging.getLogger(__name__)

MARKER_FILE = ".nvr-storage"  # recorder.store.identity.MARKER_FILE
CACHE_KEY = "nvr_hub_storage"
DEFAULT_CACHE_SECONDS = 30.0  # app.config HUB_STORAGE_CACHE_SECONDS overrides
MAX_MARKER_BYTES = 256  # a storage id is 32 hex digits


class StorageUnreachable(LookupError):
    """A hub whose storage is in none of the web app's folders: its footage cannot be read."""

    def __init__(self, hub_id: str, reason: str) -> None:
        self.hub_id = hub_id
        super().__init__(
            f"the footage of hub {hub_id} is not reachable from the web app: {reason}. Mount "
            f"that hub's storage on the web app's machine and list the folder in the web app's "
            f"config ([webapp] storage_mounts = [\"/mnt/{hub_id}\"])")


@dataclass(frozen=True)
class HubInfo:
    """What the web app needs of a ``hubs`` row to find its storage."""

    id: str
    storage_id: str | None
    storage_root: str


@dataclass(frozen=True)
class StorageMap:
    """Each hub's storage folder as this web app reaches it, and why the others are out of reach."""

    roots: Mapping[str, Path]
    unreachable: Mapping[str, str]  # hub id -> the reason

    def root(self, hub_id: str) -> Path:
        """Return hub ``hub_id``'s storage folder, or raise StorageUnreachable."""
        found = self.roots.get(hub_id)
        if found is None:
            raise StorageUnreachable(hub_id, self.unreachable.get(
                hub_id, "no hub of that id is registered in the catalog"))
        return found


def read_marker(folder: Path) -> str | None:
    """Return the storage id in ``folder``'s marker file, or None if there is none to read."""
    try:
        with open(folder / MARKER_FILE, "rb") as marker:
            text = marker.read(MAX_MARKER_BYTES).decode("ascii", "replace").strip()
    except OSError:  # absent, unreadable, or a mount gone stale: not this storage
        return None
    return text or None


def candidate_folders(config: Mapping[str, Any]) -> list[Path]:
    """Return the folders that may hold a hub's storage: STORAGE_ROOT, then STORAGE_MOUNTS."""
    folders = [Path(config["STORAGE_ROOT"]).resolve()]
    for mount in config.get("STORAGE_MOUNTS") or ():
        folder = Path(mount).resolve()
        if folder not in folders:
            folders.append(folder)
    return folders


def resolve(hubs: Iterable[HubInfo], candidates: Sequence[Path]) -> StorageMap:
    """Match each hub to the candidate folder (or its own storage_root) with its marker."""
    markers: dict[str, Path] = {}
    for folder in candidates:
        storage_id = read_marker(folder)
        if storage_id is not None:
            markers.setdefault(storage_id, folder)
    roots: dict[str, Path] = {}
    unreachable: dict[str, str] = {}
    registered = {hub.id: hub for hub in hubs}
    for hub in registered.values():
        folder = _find(hub, markers)
        if folder is not None:
            roots[hub.id] = folder
        else:
            unreachable[hub.id] = _why_not(hub, candidates)
    own = candidates[0]
    main = registered.get(DEFAULT_HUB)
    if DEFAULT_HUB not in roots and (main is None or main.storage_id is None
                                     or read_marker(own) is None):
        # an older catalog, a hub that never started, a storage without its marker yet
        roots[DEFAULT_HUB] = own
        unreachable.pop(DEFAULT_HUB, None)
    return StorageMap(roots, unreachable)


def _find(hub: HubInfo, markers: Mapping[str, Path]) -> Path | None:
    if hub.storage_id is None:
        return None
    if hub.storage_id in markers:
        return markers[hub.storage_id]
    if hub.storage_root:
        folder = Path(hub.storage_root)
        if read_marker(folder) == hub.storage_id:
            return folder.resolve()
    return None


def _why_not(hub: HubInfo, candidates: Sequence[Path]) -> str:
    if hub.storage_id is None:
        return "the hub has not registered its storage yet (has it started?)"
    looked = ", ".join(str(folder) for folder in candidates)
    seen_by_hub = f", nor {hub.storage_root} (where the hub keeps it)" if hub.storage_root else ""
    return (f"no folder of the web app holds its storage (storage id {hub.storage_id} in "
            f"{MARKER_FILE}): not {looked}{seen_by_hub}")


def _read_hubs() -> list[HubInfo]:
    rows = db.session.execute(select(Hub.id, Hub.storage_id, Hub.storage_root))
    return [HubInfo(hub_id, storage_id, storage_root or "")
            for hub_id, storage_id, storage_root in rows]


def storage_map() -> StorageMap:
    """Return the current app's storage map, read at most once per HUB_STORAGE_CACHE_SECONDS."""
    cached = current_app.extensions.get(CACHE_KEY)
    current = time.monotonic()
    if cached is not None and current < cached[0]:
        return cached[1]
    found = resolve(_read_hubs(), candidate_folders(current_app.config))
    for hub_id, reason in found.unreachable.items():
        logger.warning("hub %s: storage not reachable: %s", hub_id, reason)
    lifetime = float(current_app.config.get("HUB_STORAGE_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))
    current_app.extensions[CACHE_KEY] = (current + lifetime, found)
    return found


def forget() -> None:
    """Drop the current app's cached storage map (the next request reads the markers again)."""
    current_app.extensions.pop(CACHE_KEY, None)


def storage_root(hub_id: str) -> Path:
    """Return hub ``hub_id``'s storage folder from this web app, or raise StorageUnreachable."""
    return storage_map().root(hub_id)


def nudge_hubs(hub_id: str | None = None) -> None:
    """Touch the control mark of hub ``hub_id`` (None: of every hub reachable from here), after
    a commit it should act on now (a command, a token): nvrlib/control_mark.py."""
    roots = storage_map().roots
    for found_id, root in roots.items():
        if hub_id is None or found_id == hub_id:
            control_mark.nudge(root)


def is_reachable(hub_id: str) -> bool:
    """Tell whether the web app can read hub ``hub_id``'s storage."""
    return hub_id in storage_map().roots


def unreachable_message(hub_id: str) -> str | None:
    """Return why hub ``hub_id``'s footage cannot be read from here, or None if it can."""
    try:
        storage_root(hub_id)
    except StorageUnreachable as exc:
        return str(exc)
    return None


class OutsideStorage(ValueError):
    """A catalog path that leaves the storage root of its hub."""


def stored_file(hub_id: str, relative: str) -> Path | None:
    """Return a file the catalog names in hub ``hub_id``'s storage (None: not on disk).

    Raises OutsideStorage for a path that escapes the root (logged: the catalog is wrong or
    tampered with), StorageUnreachable when that hub's storage is not reachable from here.
    """
    root = storage_root(hub_id)
    try:
        path = Storage(root).resolve_catalog_path(relative)
    except ValueError:
        logger.warning("refused catalog path %r of hub %s: it leaves the storage root",
                       relative, hub_id)
        raise OutsideStorage(f"{relative!r} is outside the storage of hub {hub_id}") from None
    return path if path.is_file() else None


def segment_path(row: SegmentRow) -> Path:
    """Return a segment's file in its hub's storage (StorageUnreachable, SegmentFileMissing)."""
    return media.segment_file(storage_root(row.hub_id), row.path)


def locate_segments(rows: Iterable[SegmentRow]
                    ) -> tuple[list[tuple[SegmentRow, Path]], list[StorageUnreachable]]:
    """Return the rows whose files are on disk with their paths, and the unreachable hubs."""
    found: list[tuple[SegmentRow, Path]] = []
    unreachable: dict[str, StorageUnreachable] = {}
    for row in rows:
        try:
            found.append((row, segment_path(row)))
        except StorageUnreachable as exc:
            unreachable.setdefault(exc.hub_id, exc)
        except media.SegmentFileMissing as exc:
            logger.warning("segment %d skipped: %s", row.id, exc)
    return found, list(unreachable.values())
