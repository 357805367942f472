"""Which storage a hub records into: a marker file in the storage root, its id in ``hubs``.

Start-up recovery marks every cataloged segment whose file is gone as ``missing``. Started on
the wrong folder (the footage disk not mounted, so its mount point is an empty folder; a hub
pointed at another hub's storage) it would mark every recording missing, and the web app would
stop showing footage that is safe on its disk. So the first start writes a random id into
``<storage>/.nvr-storage`` and into the hub's row of the catalog's ``hubs`` table
(``storage_id``, unique: one storage per hub), and every later start checks that they agree
before anything is touched. The web app finds each hub's storage by the same marker.
"""

from __future__ import annotations

import logging
import os
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.models import Hub, Segment, utcnow
from nvrlib.durable import fsync_dir
from recorder.errors import StorageMismatch
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage

logger = logging.getLogger(__name__)

MARKER_FILE = ".nvr-storage"


def check_storage_identity(catalog: Catalog, storage: Storage, listen: str = "") -> str:
    """Make sure ``storage`` is the folder this hub records into; register the hub; return the id.

    A hub's first start adopts the storage (writes the marker and its ``hubs`` row). Raises
    StorageMismatch, before any file or row is changed, when the storage is another hub's or
    another catalog's, or lost its marker while the catalog lists this hub's footage there.
    """
    hub_id = catalog.hub_id
    on_disk = read_marker(storage)
    with catalog.sessions.begin() as session:
        row = session.get(Hub, hub_id)
        if row is None:
            row = Hub(id=hub_id, first_seen=utcnow())
            session.add(row)
        if row.storage_id is None:
            _refuse_if_owned(session, storage, on_disk, hub_id)
            row.storage_id = on_disk or _write_marker(storage)
            logger.info("storage %s is hub %s's (storage id %s)", storage.root, hub_id,
                        row.storage_id)
        elif on_disk is None:
            if _has_footage(session, hub_id):
                raise StorageMismatch(
                    f"{storage.root} is not the storage hub {hub_id} records into: it has no "
                    f"{MARKER_FILE} (storage id {row.storage_id}) while the catalog lists "
                    "footage there. Is the footage disk mounted? If the footage moved here, "
                    f"move {MARKER_FILE} with it. If this is another hub, give it a hub_id of "
                    "its own. Refusing to start: it would mark every recording missing.")
            _write_marker(storage, row.storage_id)  # nothing to lose: a new, empty folder
        elif on_disk != row.storage_id:
            _refuse_if_owned(session, storage, on_disk, hub_id)
            raise StorageMismatch(
                f"{storage.root} belongs to another catalog (its storage id is {on_disk}; "
                f"hub {hub_id} of this catalog records into {row.storage_id}): is this hub "
                "configured with another hub's db, or the wrong storage? "
                "(docs/guide/several-hubs.md)")
        row.storage_root, row.listen, row.last_started = str(storage.root), listen, utcnow()
        return row.storage_id


def _refuse_if_owned(session: Session, storage: Storage, storage_id: str | None,
                     hub_id: str) -> None:
    """Refuse a storage that another hub of this catalog records into."""
    if storage_id is None:
        return
    owner = session.scalar(select(Hub.id).where(Hub.storage_id == storage_id, Hub.id != hub_id))
    if owner is not None:
        raise StorageMismatch(
            f"{storage.root} is the storage of hub {owner!r}, and this hub's id is "
            f"{hub_id!r}: each hub needs a storage of its own (docs/guide/several-hubs.md). "
            f"If this is hub {owner!r}, set hub_id = \"{owner}\" in its config: a hub's id "
            "cannot change once it has recorded.")


def _has_footage(session: Session, hub_id: str) -> bool:
    return session.scalar(select(Segment.id).where(Segment.hub_id == hub_id,
                                                   Segment.status == "ok").limit(1)) is not None


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
