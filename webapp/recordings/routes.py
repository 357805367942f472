"""Views of the recordings blueprint: search, day timeline, player and thumbnails."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from flask import abort, current_app, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue

from .. import catalog_queries, hub_storage, media, stream_links
from ..catalog_queries import Interval, Timeline, iso_utc
from ..protect import locks
from ..security import now
from ..timeline import queries
from . import bp, happenings
from .params import (
    DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_RANGE, ParamError, int_param, optional_time, parse_date,
    parse_tz, search_query,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = DEFAULT_PAGE_SIZE
MAX_PAGE = MAX_OFFSET // PAGE_SIZE
SORT_LABELS = {"time": "Time", "duration": "Duration", "size": "Size"}
DEFAULT_PLAY_BACK = dt.timedelta(hours=1)  # the player with no start: the last hour
DEFAULT_EXPORT_SPAN = dt.timedelta(minutes=10)  # the export form's range with no end
GAP_TOLERANCE = dt.timedelta(seconds=1)  # footage this close to the asked moment counts as there
THUMB_CACHE = "private, max-age=86400"


@bp.app_template_filter("recording_duration")
def format_duration(seconds: float) -> str:
    """Format seconds as ``9.9 s``, ``12 min 5 s`` or ``3 h 20 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


@bp.app_template_filter("recording_size")
def format_size(size: int) -> str:
    """Format a byte count as ``512 B``, ``1.5 MB`` ..."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@bp.app_template_filter("recording_utc")
def utc_text(value: dt.datetime) -> str:
    """Format a time as ``2026-03-01 12:00:00 UTC`` (app.js shows it in local time)."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("recording_iso")
def iso_text(value: dt.datetime) -> str:
    """Format a time as ISO-8601 UTC (``2026-03-01T12:00:00.000Z``) for URLs and attributes."""
    return iso_utc(value)


def _local_input(value: dt.datetime, tz: dt.tzinfo) -> str:
    """Format a time for a datetime-local field, in ``tz``."""
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def _page_url(args: Mapping[str, str], page: int) -> str:
    return url_for("recordings.index", **{**args, "page": str(page)})


@bp.route("/")
def index() -> ResponseReturnValue:
    """Show what happened (footage spans, motion); or search, sort and page the raw files."""
    args = request.args.to_dict()
    if not happenings.wants_files(args):
        return _happenings_page(args)
    page, error, page_no = None, None, 1
    try:
        page_no = int_param(args, "page", 1, 1, MAX_PAGE)
        query = search_query(args, (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
        page = catalog_queries.search(query.filters, query.sort, query.order, query.limit,
                                      query.offset)
    except ParamError as exc:
        error = str(exc)
    context: dict[str, Any] = {
        "args": args, "cameras": catalog_queries.camera_names(), "page": page, "error": error,
        "page_no": page_no, "sort_labels": SORT_LABELS,
        "protected_ids": locks.protected_ids(page.rows) if page else set(),
        "prev_url": _page_url(args, page_no - 1) if page and page_no > 1 else None,
        "next_url": _page_url(args, page_no + 1) if page and page.has_next else None,
    }
    return render_template("recordings/index.html", **context), 400 if error else 200


def _happenings_page(args: dict[str, str]) -> ResponseReturnValue:
    """Render the footage spans and motion events of a range (the Recordings page's first view)."""
    context: dict[str, Any] = {"args": args, "cameras": catalog_queries.camera_names(),
                               "error": None, "files_url": url_for("recordings.index",
                                                                   **{**args, "view": "files"})}
    try:
        context.update(happenings.happenings(args, now()))
    except ParamError as exc:
        context["error"] = str(exc)
    return render_template("recordings/happenings.html", **context), 400 if context["error"] else 200


def _known_camera(name: str) -> None:
    if catalog_queries.camera_by_name(name) is None:
        abort(404, f"There is no camera named {name!r}.")


def _timeline_bars(timeline: Timeline, span: float) -> list[dict[str, Any]]:
    """Return the SVG rectangles of the covered intervals, in seconds from the day's start."""
    least = span / 800  # keep a short stretch visible (about one pixel at 800 px)
    return [{"interval": interval,
             "x": round((interval.start - timeline.start).total_seconds(), 3),
             "width": round(max(interval.seconds, least), 3)}
            for interval in timeline.covered]


def _backfill_bars(timeline: Timeline, span: float) -> list[dict[str, Any]]:
    """Return the SVG rectangles of the back-filled stretches (drawn over the footage)."""
    least = span / 800
    return [{"interval": interval,
             "x": round((interval.start - timeline.start).total_seconds(), 3),
             "width": round(max(interval.seconds, least), 3)}
            for interval in timeline.backfilled]


def _outage_bars(timeline: Timeline, span: float) -> list[dict[str, Any]]:
    """Return the SVG rectangles of the outages, drawn only where they leave a gap."""
    least = span / 800
    bars = []
    for gap in timeline.gaps:
        for outage in timeline.outages:
            start, end = max(gap.start, outage.start), min(gap.end, outage.end)
            if end <= start:
                continue
            bars.append({"outage": outage, "start": start, "end": end,
                         "x": round((start - timeline.start).total_seconds(), 3),
                         "width": round(max((end - start).total_seconds(), least), 3)})
    return bars


def _lock_bars(camera: str, timeline: Timeline, span: float) -> list[dict[str, Any]]:
    """Return the SVG rectangles of the stretches of the day that locks protect."""
    least = span / 800
    return [{"interval": interval,
             "x": round((interval.start - timeline.start).total_seconds(), 3),
             "width": round(max(interval.seconds, least), 3)}
            for interval in locks.locked_intervals(camera, timeline.start, timeline.end)]


def _play_url(camera: str, interval: Interval) -> str:
    return url_for("recordings.play", camera=camera, start=iso_utc(interval.start))


def _export_url(camera: str, interval: Interval) -> str:
    return url_for("api.export", camera=camera, start=iso_utc(interval.start),
                   end=iso_utc(interval.end))


@bp.route("/timeline")
def timeline_pick() -> ResponseReturnValue:
    """Send the camera picked in the timeline form to that camera's timeline."""
    camera = request.args.get("camera", "").strip()
    if not camera:
        cameras = catalog_queries.camera_names()
        if not cameras:
            abort(404, "No camera has recorded yet.")
        camera = cameras[0]
    args = {key: value for key, value in request.args.items() if key in ("day", "at", "tz")}
    return redirect(url_for("recordings.timeline", camera=camera, **args))


@bp.route("/timeline/<camera>")
def timeline(camera: str) -> ResponseReturnValue:
    """Show a camera's day: where footage exists and where the gaps are."""
    _known_camera(camera)
    try:
        tz = parse_tz(request.args.get("tz"))
        at = optional_time(request.args, "at", tz)
        day_text = request.args.get("day", "").strip()
        day = (parse_date(day_text, "day") if day_text
               else (at or now()).astimezone(tz).date())
    except ParamError as exc:
        abort(400, str(exc))
    current = now()
    # the segment being written counts as footage while the camera is live (as on /timeline/)
    known = queries.camera_ids([camera]).get(camera)
    live = queries.live_status([known[0]], current).get(known[0]) if known else None
    day_timeline = catalog_queries.day_timeline(camera, day, tz, now=current,
                                                writing_since=live.since if live else None)
    span = (day_timeline.end - day_timeline.start).total_seconds()
    future = max(0.0, (day_timeline.end - max(now(), day_timeline.start)).total_seconds())
    tz_name = request.args.get("tz", "")
    context = {
        "camera": camera, "cameras": catalog_queries.camera_names(), "timeline": day_timeline,
        "span": span, "bars": _timeline_bars(day_timeline, span), "tz_name": tz_name,
        "outage_bars": _outage_bars(day_timeline, span),
        "backfill_bars": _backfill_bars(day_timeline, span),
        "lock_bars": _lock_bars(camera, day_timeline, span),
        "future_x": span - future, "future_width": future,
        "ticks": [round(span * hour / 24, 3) for hour in range(1, 24)],
        "day_url": lambda d: url_for("recordings.timeline", camera=camera, day=d.isoformat(),
                                     **({"tz": tz_name} if tz_name else {})),
        "play_url": _play_url, "export_url": _export_url,
        "one_day": dt.timedelta(days=1),
    }
    return render_template("recordings/timeline.html", **context)


def _hours_text(span: dt.timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours >= 1:
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    return f"{round(span.total_seconds() / 60)} minutes"


@bp.route("/play")
def play() -> ResponseReturnValue:
    """Play a camera from a time: an HLS player, a wall-clock readout and an export form."""
    cameras = catalog_queries.camera_names()
    camera = request.args.get("camera", "").strip()
    if not camera:
        return render_template("recordings/play.html", cameras=cameras, camera=None)
    _known_camera(camera)
    tz_name = request.args.get("tz", "")
    try:
        tz = parse_tz(tz_name)
        start = optional_time(request.args, "start", tz) or now() - DEFAULT_PLAY_BACK
        end = optional_time(request.args, "end", tz)
    except ParamError as exc:
        abort(400, str(exc))
    if end is not None and not start < end <= start + MAX_RANGE:
        abort(400, "end: must be after start, and at most 24 h later")
    play_end = end or start + MAX_RANGE
    first = catalog_queries.first_segment(camera, start, play_end)
    # no footage at the asked moment: say so, and offer the nearest footage each way
    before, after = (None, None) if first is not None and first.start <= start + GAP_TOLERANCE \
        else catalog_queries.nearest_footage(camera, start)
    unreachable = hub_storage.unreachable_message(first.hub_id) if first else None
    export_end = end or min(start + DEFAULT_EXPORT_SPAN, play_end)
    context = {
        "cameras": cameras, "camera": camera, "first": first, "tz_name": tz_name,
        "unreachable": unreachable,
        "start": start, "end": play_end, "export_start": start, "export_end": export_end,
        "start_input": _local_input(start, tz),
        "export_start_input": _local_input(start, tz),
        "export_end_input": _local_input(export_end, tz),
        "offset": round(max(0.0, (start - first.start).total_seconds()), 3) if first else 0,
        "playlist_url": url_for("api.playlist", camera=camera, start=iso_utc(start),
                                end=iso_utc(play_end)),
        "stream_link_hours": _hours_text(stream_links.lifetime()),
        "stream_link_url": url_for("api.playback_link", camera=camera, start=iso_utc(start),
                                   end=iso_utc(play_end)),
        "timeline_url": url_for("recordings.timeline", camera=camera, at=iso_utc(start)),
        "nearest_before": before, "nearest_after": after,
        "play_from": lambda moment: url_for("recordings.play", camera=camera,
                                            start=iso_utc(moment), tz=tz_name or None),
    }
    return render_template("recordings/play.html", **context)


@bp.route("/<int:segment_id>/thumbnail.jpg")
def thumbnail(segment_id: int) -> ResponseReturnValue:
    """Serve a segment's thumbnail (its first keyframe, 320 px wide), made on first request."""
    row = catalog_queries.segment(segment_id)
    if row is None or row.status != catalog_queries.STATUS_OK:
        abort(404, "No such recording.")
    try:
        root = hub_storage.storage_root(row.hub_id)
    except hub_storage.StorageUnreachable as exc:
        abort(503, str(exc))
    try:
        source = media.segment_file(root, row.path)
        target = media.thumbnail_path(root, row.camera, row.id)  # in its hub's storage
        try:
            response = send_file(media.ensure_thumbnail(source, target), mimetype="image/jpeg",
                                 conditional=True)
        except OSError as exc:  # a read-only storage: serve it without keeping it
            logger.warning("cannot cache thumbnail %s: %s", target, exc)
            response = current_app.response_class(media.render_thumbnail(source),
                                                  mimetype="image/jpeg")
    except media.MediaError as exc:
        logger.info("no thumbnail for segment %d: %s", segment_id, exc)
        abort(404, "This recording has no picture to show.")
    response.headers["Cache-Control"] = THUMB_CACHE
    return response
