"""Views of the events blueprint: alerts, outages, motion and faces, filtered and paged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue

from .. import faces_service, motion_service
from ..recordings.params import MAX_OFFSET, ParamError, int_param
from ..security import current_user_is_admin, now
from . import bp, queries

PAGE_SIZE = 50
MAX_PAGE = MAX_OFFSET // PAGE_SIZE


def _page_url(args: Mapping[str, str], page: int) -> str:
    return url_for("events.index", **{**args, "page": str(page)})


@bp.route("/")
def index() -> ResponseReturnValue:
    """List alerts, outages, motion events and face sightings, newest first, by camera, type,
    person and time range; page them."""
    args = {key: value for key, value in request.args.items()
            if key in (*queries.FILTER_PARAMS, "page")}
    page, error, error_field, page_no = None, None, None, 1
    try:
        page_no = int_param(args, "page", 1, 1, MAX_PAGE)
        filters = queries.parse_filters(args)
        page = queries.events(filters, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
    except ParamError as exc:
        error, error_field = str(exc), exc.name
    context: dict[str, Any] = {
        "args": args, "cameras": queries.camera_choices(), "page": page, "error": error,
        "error_field": error_field, "page_no": page_no, "kinds": queries.FILTER_KINDS,
        "snapshot_url": motion_service.snapshot_url, "play_url": motion_service.play_url,
        "crop_url": faces_service.sighting_crop_url, "people": queries.person_choices(),
        "status_badges": queries.STATUS_BADGES, "now": now(), "admin": current_user_is_admin(),
        "prev_url": _page_url(args, page_no - 1) if page and page_no > 1 else None,
        "next_url": _page_url(args, page_no + 1) if page and page.has_next else None,
    }
    return render_template("events/index.html", **context), 400 if error else 200
