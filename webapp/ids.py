"""Row ids in URLs and JSON bodies: whole numbers that a database id column can hold."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter

# SQLite's INTEGER and PostgreSQL's BIGINT; a larger number made the driver raise (a 500).
MAX_ID = 2**63 - 1
# In a URL, ids have at most 18 digits (all below MAX_ID): a longer one matches no route at all,
# a 404. (Bounding by value instead made werkzeug answer 405 to a DELETE of a huge id.)
URL_ID_DIGITS = 18
MAX_URL_ID = 10**URL_ID_DIGITS - 1


def is_id(value: Any) -> bool:
    """Tell whether ``value`` is a whole number (not a bool) that a database id can be."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


class IdConverter(IntegerConverter):
    """Flask's ``<int:...>`` of at most `URL_ID_DIGITS` digits: a longer id is a 404."""

    regex = rf"\d{{1,{URL_ID_DIGITS}}}"
