"""The hubs that record into this catalog, as the web app's pages and forms need them.

Each hub registers itself in ``hubs`` when it starts (docs/design/architecture.md, "Several
hubs"). A catalog no hub has registered in yet (an older hub, tests) has one hub: ``main``.
"""

from __future__ import annotations

from sqlalchemy import select

from nvrlib.catalog.models import Hub
from nvrlib.names import DEFAULT_HUB

from .extensions import db


class UnknownHub(ValueError):
    """A hub id that no hub of this catalog has."""


def hub_rows() -> list[Hub]:
    """Return every registered hub, by id."""
    return list(db.session.scalars(select(Hub).order_by(Hub.id)))


def hub_ids() -> list[str]:
    """Return the ids of the registered hubs, sorted; ``["main"]`` when none has registered."""
    ids = list(db.session.scalars(select(Hub.id).order_by(Hub.id)))
    return ids or [DEFAULT_HUB]


def several_hubs() -> bool:
    """Tell whether more than one hub records into this catalog (pages then show hubs)."""
    return len(hub_ids()) > 1


def choose_hub(wanted: str | None) -> str:
    """Return the hub a new camera goes to: ``wanted``, or the only hub when none is named.

    Raises UnknownHub (its message names the field ``hub``) for an id no hub has, and when
    several hubs record here and none is named.
    """
    ids = hub_ids()
    wanted = (wanted or "").strip()
    if not wanted:
        if len(ids) == 1:
            return ids[0]
        raise UnknownHub(f"hub: several hubs record into this catalog; name one of "
                         f"{', '.join(ids)}")
    if wanted not in ids:
        raise UnknownHub(f"hub: no hub {wanted!r} records into this catalog; "
                         f"use one of {', '.join(ids)}")
    return wanted
