"""Which storage a catalog records into: a marker file in the storage root, its id in the catalog.

Start-up recovery marks every cataloged segment whose file is gone as ``missing``. Started on
the wrong folder (the footage disk not mounted, so its mount point is an empty folder; a second
hub pointed at the same catalog with storage of its own) it would mark every recording missing,
and the web app would stop showing footage that is safe on its disk. So the first start writes
a random id into ``<storage>/.nvr-storage`` and into the catalog's ``settings``
(``storage.id``), and every later start checks that they agree before anything is touched.
"""

from __future__ import annotations

import logging
import os
import secrets

from sqlalchemy import select

from nvrlib.catalog.models import Segment, Setting, utcnow
from nvrlib.durable import fsync_dir
from recorder.errors import StorageMismatch
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage

logger = logging.getLogger(__name__)

MARKER_FILE = ".nvr-storage"
SETTING_KEY = "storage.id"


def check_storage_identity(catalog: Catalog, storage: Storage) -> str:
    """Make sure ``storage`` is the folder ``catalog`` records into; return its id.

    A first start adopts the storage (writes the marker and the setting). Raises
    StorageMismatch, before any file or row is changed, when they belong to different
    installations or the storage lost its marker while the catalog has footage.
    """
    on_disk = read_marker(storage)
    with catalog.sessions.begin() as session:
        setting = session.get(Setting, SETTING_KEY)
        if setting is None:
            storage_id = on_disk or _write_marker(storage)
            session.add(Setting(key=SETTING_KEY, value=storage_id, updated_at=utcnow(),
                                updated_by="hub"))
            logger.info("storage %s is this catalog's (storage id %s)", storage.root, storage_id)
            return storage_id
        if on_disk == setting.value:
            return on_disk
        if on_disk is None:
            has_footage = session.scalar(select(Segment.id).where(Segment.status == "ok").limit(1))
            if has_footage is None:  # nothing to lose: a new, empty storage folder
                return _write_marker(storage, setting.value)
            raise StorageMismatch(
                f"{storage.root} is not the storage this catalog records into: it has no "
                f"{MARKER_FILE} (storage id {setting.value}) while the catalog lists footage "
                "there. Is the footage disk mounted? If the footage moved here, move "
                f"{MARKER_FILE} with it. Refusing to start: it would mark every recording missing.")
        raise StorageMismatch(
            f"{storage.root} belongs to another catalog (its storage id is {on_disk}; this "
            f"catalog records into {setting.value}): is another hub configured with the same "
            "db? Each hub needs a catalog of its own (docs/guide/several-hubs.md).")


def read_marker(storage: Storage) -> str | None:
    """Return the storage id in the root's marker file, or None if there is none."""
    try:
        return (storage.root / MARKER_FILE).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def _write_marker(storage: Storage, storage_id: str | None = None) -> str:
    storage_id = storage_id or secrets.token_hex(16)
    storage.root.mkdir(parents=True, exist_ok=True)
    temporary = storage.root / f"{MARKER_FILE}.tmp"
    with open(temporary, "w", encoding="ascii") as marker:
        marker.write(storage_id + "\n")
        marker.flush()
        os.fsync(marker.fileno())
    os.replace(temporary, storage.root / MARKER_FILE)
    fsync_dir(storage.root)
    return storage_id
