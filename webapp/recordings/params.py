"""Reading the query parameters of the recordings pages and API; errors name the parameter.

Times are ISO-8601. One with an offset (``Z``, ``+02:00``) means what it says; one without
(what an HTML ``datetime-local`` field sends) is read in the time zone of the ``tz`` parameter
(an IANA name such as ``Europe/Paris``, or an offset such as ``+02:00``), UTC when there is none.
A time must fall within `EARLIEST` and `LATEST` (years 1900 to 2999): far enough from the
calendar's ends that adding a day, a range or a time zone to it can never overflow.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from flask import abort, request

from nvrlib.names import MAX_NAME_LENGTH

from ..catalog_queries import (
    DEFAULT_ORDER, DEFAULT_SORT, MAX_PAGE_SIZE, ORDERS, SORTS, STATUS_OK, STATUSES, SearchFilters,
)
from ..service_errors import ServiceError

UTC = dt.timezone.utc
MAX_RANGE = dt.timedelta(hours=24)  # longest playlist or export
MAX_OFFSET = 100_000  # deeper pages: narrow the time range instead
MAX_LOCATION_LENGTH = 128  # as cameras_service: a longer search text can match nothing
DEFAULT_PAGE_SIZE = 50
# Far from datetime's year 1 and 9999, so that range and zone arithmetic cannot overflow.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.timezone.utc)
MAX_TZ_NAME = 64  # longer than any IANA name; a longer value never reaches the file system
_OFFSET_TZ = re.compile(r"([+ -])(\d{2}):(\d{2})")  # " 01:00": a "+" sent unencoded
# "...T12:00:00+02:00" sent unencoded arrives as "...T12:00:00 02:00" (a "+" means a space).
_LOST_PLUS = re.compile(r"(.+[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}:?\d{2})")
STATUS_CHOICES = (*STATUSES, "all")
BOOLEAN_CHOICES = ("true", "false")


class ParamError(ServiceError, ValueError):
    """A query parameter that is missing or malformed; ``str()`` names the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: its filters, sort key, order, page size and offset."""

    filters: SearchFilters
    sort: str = DEFAULT_SORT
    order: str = DEFAULT_ORDER
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0


def refuse_nul_parameters() -> None:
    """Answer 400 for a query parameter holding a NUL character (PostgreSQL cannot store one)."""
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            abort(400, f"{name.replace(chr(0), '')}: must not contain NUL characters")


def parse_tz(value: str | None) -> dt.tzinfo:
    """Return the time zone named by ``value`` (IANA name, ``UTC`` or ``+HH:MM``); UTC if empty."""
    if not value or value.upper() in ("UTC", "Z"):
        return UTC
    offset = _OFFSET_TZ.fullmatch(value)
    if offset:
        return _offset_tz(value, *offset.groups())
    if len(value) > MAX_TZ_NAME:
        raise ParamError("tz", f"unknown time zone (longer than {MAX_TZ_NAME} characters)")
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ParamError("tz", f"unknown time zone {value!r}") from None


def _offset_tz(value: str, sign: str, hours: str, minutes: str) -> dt.tzinfo:
    """Return the fixed zone of an offset ``+HH:MM``, which must be within -23:59..+23:59."""
    if int(hours) > 23 or int(minutes) > 59:
        raise ParamError("tz", f"offset out of range (-23:59 to +23:59): {value!r}")
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    return dt.timezone(-delta if sign == "-" else delta)


def _restore_plus(value: str) -> str:
    match = _LOST_PLUS.fullmatch(value)
    return f"{match.group(1)}+{match.group(2)}" if match else value


def parse_time(value: str, name: str, tz: dt.tzinfo = UTC) -> dt.datetime:
    """Parse an ISO-8601 time into an aware UTC datetime; a naive one is read in ``tz``."""
    try:
        parsed = dt.datetime.fromisoformat(_restore_plus(value.strip()))
    except ValueError:
        raise ParamError(name, f"not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-14:00 is in the year 10000
        parsed = LATEST
    if not EARLIEST <= parsed < LATEST:
        raise ParamError(name, f"out of range (years {EARLIEST.year} to {LATEST.year - 1}): "
                               f"{value!r}")
    return parsed


def optional_time(args: Mapping[str, str], name: str, tz: dt.tzinfo) -> dt.datetime | None:
    """Return the time in parameter ``name``, or None when it is absent or empty."""
    value = args.get(name, "")
    return parse_time(value, name, tz) if value.strip() else None


def parse_date(value: str, name: str) -> dt.date:
    """Parse a calendar day ``YYYY-MM-DD``."""
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ParamError(name, f"not a date (YYYY-MM-DD): {value!r}") from None
    if not EARLIEST.date() <= day < LATEST.date():  # the day's bounds in any zone stay in range
        raise ParamError(name, f"out of range (years {EARLIEST.year} to {LATEST.year - 1}): "
                               f"{value!r}")
    return day


def optional_seconds(args: Mapping[str, str], name: str) -> float | None:
    """Return a non-negative number of seconds from parameter ``name``, or None when absent."""
    value = args.get(name, "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ParamError(name, f"not a number of seconds: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ParamError(name, "must be a number of seconds, 0 or more")
    return number


def int_param(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """Return a whole number from parameter ``name`` (``default`` when absent) within bounds."""
    value = args.get(name, "").strip()
    if not value:
        return default
    if not re.fullmatch(r"\d{1,9}", value):
        raise ParamError(name, f"not a whole number: {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise ParamError(name, f"must be between {low} and {high}")
    return number


def text_param(args: Mapping[str, str], name: str, max_length: int, what: str) -> str | None:
    """Return a text filter (None when absent), refusing one longer than ``what`` can be."""
    value = args.get(name, "").strip()
    if len(value) > max_length:
        raise ParamError(name, f"longer than {what} can be ({max_length} characters)")
    return value or None


def choice(args: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    """Return parameter ``name`` if it is one of ``allowed`` (``default`` when absent)."""
    value = args.get(name, "").strip() or default
    if value not in allowed:
        raise ParamError(name, f"must be one of {', '.join(allowed)}")
    return value


def time_range(args: Mapping[str, str], tz: dt.tzinfo, default_span: dt.timedelta | None = None,
               ) -> tuple[dt.datetime, dt.datetime]:
    """Return the required ``start`` and the ``end`` (``start + default_span`` when absent).

    The range must be non-empty and at most `MAX_RANGE` long.
    """
    start = optional_time(args, "start", tz)
    if start is None:
        raise ParamError("start", "required (an ISO-8601 time)")
    end = optional_time(args, "end", tz)
    if end is None:
        if default_span is None:
            raise ParamError("end", "required (an ISO-8601 time)")
        end = start + default_span
    if end <= start:
        raise ParamError("end", "must be after start")
    if end - start > MAX_RANGE:
        hours = MAX_RANGE.total_seconds() / 3600
        raise ParamError("end", f"the range is longer than {hours:.0f} h")
    return start, end


def search_query(args: Mapping[str, str], offset: int, limit: int) -> SearchQuery:
    """Validate the search parameters shared by the page and the API (not paging)."""
    tz = parse_tz(args.get("tz"))
    start = optional_time(args, "start", tz)
    end = optional_time(args, "end", tz)
    if start is not None and end is not None and end <= start:
        raise ParamError("end", "must be after start")
    min_duration = optional_seconds(args, "min_duration")
    max_duration = optional_seconds(args, "max_duration")
    if min_duration is not None and max_duration is not None and max_duration < min_duration:
        raise ParamError("max_duration", "must not be less than min_duration")
    status = choice(args, "status", STATUS_CHOICES, STATUS_OK)
    motion = choice(args, "motion", BOOLEAN_CHOICES, "false") == "true"
    filters = SearchFilters(
        camera=text_param(args, "camera", MAX_NAME_LENGTH, "a camera name"),
        location=text_param(args, "location", MAX_LOCATION_LENGTH, "a location"),
        start=start, end=end, min_duration=min_duration, max_duration=max_duration,
        statuses=STATUSES if status == "all" else (status,), motion=motion)
    return SearchQuery(filters, choice(args, "sort", tuple(SORTS), DEFAULT_SORT),
                       choice(args, "order", ORDERS, DEFAULT_ORDER), limit, offset)


def page_size(args: Mapping[str, str]) -> int:
    """Return ``limit`` (default 50), capped at `MAX_PAGE_SIZE` rather than refused."""
    value = args.get("limit", "").strip()
    if value and re.fullmatch(r"\d+", value) and int(value) > MAX_PAGE_SIZE:
        return MAX_PAGE_SIZE
    return int_param(args, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
