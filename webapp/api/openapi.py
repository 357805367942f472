"""The OpenAPI 3 document of API v1, served at ``GET /api/v1/openapi.json`` (docs/api.md).

Written by hand, as data, beside the views rather than in them: the views stay plain Flask,
and the document takes its enums and limits from the same constants the views check, so the
two cannot drift apart there. tests/webapp/test_openapi.py fails when a route of /api/v1 is
missing from it (or it names one that does not exist), and runs schemathesis over it.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from nvrlib.names import MAX_NAME_LENGTH

from .. import cameras_service, faces_service, faces_settings, motion_service
from ..alerting import service as alerting
from ..catalog_queries import MAX_PAGE_SIZE, ORDERS, SORTS
from ..events.queries import EVENT_TYPES
from ..ids import MAX_URL_ID
from ..recordings.params import (
    BOOLEAN_CHOICES, DEFAULT_PAGE_SIZE, MAX_LOCATION_LENGTH, MAX_OFFSET, STATUS_CHOICES,
)
from ..exports import DEFAULT_SPEED, MAX_SPEED, MIN_SPEED
from ..timeline.params import DEFAULT_BUCKETS, MAX_BUCKETS, MAX_CAMERAS
from . import bp
from .bulk_exports import MAX_ZIP_CAMERAS
from .people import MAX_PHOTO_BYTES

Schema = dict[str, Any]
JSON = "application/json"
CAMERA_NAME = f"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}$"
ISO_TIME = "ISO-8601, years 1900-2999; without a zone it is read in `tz` (see docs/api.md, Times)"
TIME_OUT: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIME: Schema = {"type": "string", "format": "date-time", "nullable": True}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Every user: a session cookie (with X-CSRFToken on changes) or a Bearer token.
USER_SECURITY = [{"bearer": []}, {"session": []}]
# A playlist and its segments also open with a stream link's ?st= (webapp/stream_links.py).
STREAM_SECURITY = [*USER_SECURITY, {"streamLink": []}]


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": ERROR_REF}}}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


def _query(name: str, description: str, schema: Schema, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def _path(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


CAMERA_PATH = _path("camera", "the camera's name", {"type": "string", "pattern": CAMERA_NAME})
TIME_QUERY = {"type": "string", "maxLength": 64}
CAMERA_QUERY = {"type": "string", "maxLength": MAX_NAME_LENGTH}
ID_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_URL_ID}  # longer ids: 404
TZ_PARAM = _query("tz", "zone of times without one: an IANA name or +HH:MM (default UTC)",
                  {"type": "string", "maxLength": 64})
HOURS = 'armed hours, e.g. "22:00-06:00" or "22:00-06:00, 12:00-13:00"; empty: all day'
LINK_HEADER = {"Link": {"description": 'the next page, `<url>; rel="next"`, when more follow',
                        "schema": {"type": "string"}}}


def _operation(summary: str, responses: dict[str, Schema], *, admin: bool = False,
               parameters: list[Schema] | None = None, body: Schema | None = None,
               public: bool = False, tag: str = "", stream_link: bool = False) -> Schema:
    """One operation, with the errors every authenticated call may answer."""
    operation: Schema = {"summary": summary, "tags": [tag] if tag else [],
                         "responses": dict(responses)}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
        operation["responses"].setdefault("400", _error("a bad field, or not a JSON object"))
    if public:
        operation["security"] = []
        return operation
    operation["security"] = STREAM_SECURITY if stream_link else USER_SECURITY
    if stream_link:
        operation["responses"]["403"] = _error("a stream link for another camera or range")
    operation["responses"]["401"] = {
        **_error("no session and no valid token"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}
    if admin:
        operation["responses"]["403"] = _error("the user is not an admin")
    if body is not None or any(p["in"] == "query" for p in parameters or []):
        operation["responses"].setdefault("400", _error("a bad parameter, named first"))
    return operation


STREAM_PARAM = _query("st", "a stream link's token, for players that send no header or cookie",
                      {"type": "string", "maxLength": 1024})


def _segment_operation(summary: str) -> Schema:
    video = {"content": {"video/mp2t": {"schema": {"type": "string", "format": "binary"}}}}
    return _operation(
        summary,
        {"200": {"description": "the file", **video},
         "206": {"description": "the range asked for", **video},
         "304": {"description": "not modified (If-None-Match)"},
         "404": _error("no such recording, or its file is not on disk"),
         "416": _error("a range outside the file"),
         "503": _error("the storage of the recording's hub is not reachable from this web app")},
        parameters=[_path("segment_id", "the recording's id", ID_SCHEMA), STREAM_PARAM],
        tag="recordings", stream_link=True)


def _recordings_paths() -> dict[str, Schema]:
    page = [_query("limit", f"page size, 1-{MAX_PAGE_SIZE} (larger: capped), default "
                   f"{DEFAULT_PAGE_SIZE}", {"type": "integer", "minimum": 1}),
            _query("offset", f"matches to skip, at most {MAX_OFFSET}",
                   {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET})]
    search = [
        _query("camera", "the camera's name (exact)", CAMERA_QUERY),
        _query("location", "part of the location (case-insensitive)",
               {"type": "string", "maxLength": MAX_LOCATION_LENGTH}),
        _query("start", f"range start; {ISO_TIME}", TIME_QUERY),
        _query("end", f"range end (exclusive); {ISO_TIME}", TIME_QUERY), TZ_PARAM,
        _query("min_duration", "seconds, inclusive", {"type": "number", "minimum": 0}),
        _query("max_duration", "seconds, inclusive", {"type": "number", "minimum": 0}),
        _query("sort", "sort key", {"type": "string", "enum": list(SORTS)}),
        _query("order", "sort order", {"type": "string", "enum": list(ORDERS)}),
        _query("status", "which recordings", {"type": "string", "enum": list(STATUS_CHOICES)}),
        _query("motion", "true: only recordings that overlap a motion event of their camera",
               {"type": "string", "enum": list(BOOLEAN_CHOICES)}),
        *page]
    range_params = [_query("start", f"range start; {ISO_TIME}", TIME_QUERY, required=True),
                    _query("end", f"range end, at most 24 h after start; {ISO_TIME}",
                           TIME_QUERY), TZ_PARAM]
    export_params = [range_params[0], {**range_params[1], "required": True}, TZ_PARAM]
    no_footage = _error("no such camera, or no footage in the range")
    unreachable = {**_error("the footage is on a hub whose storage this web app cannot reach "
                            "(the message names the hub and storage_mounts)"),
                   "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    return {
        "/api/v1/recordings": {"get": _operation(
            "Search recordings", {"200": {**_json("recordings, in the order asked for",
                                                  _list_of("Recording")),
                                          "headers": LINK_HEADER}},
            parameters=search, tag="recordings")},
        "/api/v1/recordings/{segment_id}/segment.ts": {"get": _segment_operation(
            "A recording's MPEG-TS file (Range requests work)")},
        "/api/v1/recordings/{segment_id}/file": {"get": _segment_operation(
            "The same file at its older URL, kept for existing clients (players want `.ts`)")},
        "/api/v1/playback/{camera}.m3u8": {"get": _operation(
            "An HLS VOD playlist of a camera's footage in [start, end)",
            {"200": {"description": "the playlist", "content": {
                "application/vnd.apple.mpegurl": {"schema": {"type": "string"}}}},
             "404": no_footage, "503": unreachable},
            parameters=[CAMERA_PATH, *range_params, STREAM_PARAM], tag="recordings",
            stream_link=True)},
        "/api/v1/playback/{camera}/link": {"post": _operation(
            "A stream link: the playlist's URL with a signed token that expires",
            {"200": _json("the link", _ref("StreamLink")), "404": _error("no such camera")},
            parameters=[CAMERA_PATH, *range_params], tag="recordings")},
        "/api/v1/export/{camera}.mp4": {"get": _operation(
            "A camera's footage in [start, end) as one MP4 (stream copy)",
            {"200": {"description": "the MP4, as an attachment", "content": {
                "video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
             "404": no_footage,
             "500": _error("ffmpeg failed or timed out"),
             "503": {**_error("too many exports are running, or the footage is on a hub whose "
                              "storage this web app cannot reach"),
                     "headers": {"Retry-After": {"schema": {"type": "integer"}}}}},
            parameters=[CAMERA_PATH, *export_params], tag="recordings")},
    }


def _timeline_paths() -> dict[str, Schema]:
    cameras = _query("cameras", f"comma-separated camera names (default every camera; at most "
                                f"{MAX_CAMERAS})", {"type": "string", "maxLength": 4096})
    start = _query("start", f"range start; {ISO_TIME}", TIME_QUERY, required=True)
    end = _query("end", f"range end, at most 24 h after start; {ISO_TIME}", TIME_QUERY)
    busy = {**_error("too many exports are running"),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    mp4 = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}
    return {
        "/api/v1/timeline": {"get": _operation(
            "Each camera's footage spans, gaps, back-filled spans and motion in a range",
            {"200": _json("the timeline", _ref("Timeline")),
             "404": _error("a camera named in `cameras` does not exist")},
            parameters=[start, end, cameras, TZ_PARAM, _query(
                "resolution", f"seconds per motion-density bucket (default: the range in "
                              f"{DEFAULT_BUCKETS}; at most {MAX_BUCKETS} buckets)",
                {"type": "number", "minimum": 1})], tag="recordings")},
        "/api/v1/export.zip": {"get": _operation(
            "Several cameras' footage in [start, end) as a ZIP of MP4s (stream copy)",
            {"200": {"description": "the ZIP, as an attachment, streamed", "content": {
                "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
             "404": _error("no such camera, or none has footage in the range"),
             "500": _error("ffmpeg failed or timed out"), "503": busy},
            parameters=[{**cameras, "required": True,
                         "description": f"comma-separated camera names (at most "
                                        f"{MAX_ZIP_CAMERAS})"},
                        start, {**end, "required": True}, TZ_PARAM], tag="recordings")},
        "/api/v1/timelapse/{camera}.mp4": {"get": _operation(
            "A timelapse of a camera's footage in [start, end), from keyframes",
            {"200": {"description": "the MP4, as an attachment", "content": mp4},
             "404": _error("no such camera, or no footage in the range"),
             "500": _error("ffmpeg failed or timed out"), "503": busy},
            parameters=[CAMERA_PATH, start, {**end, "required": True}, TZ_PARAM, _query(
                "speed", f"times faster than real time, {MIN_SPEED}-{MAX_SPEED} (default "
                         f"{DEFAULT_SPEED}: an hour in a minute)",
                {"type": "integer", "minimum": MIN_SPEED, "maximum": MAX_SPEED})],
            tag="recordings")},
    }


def _locks_paths() -> dict[str, Schema]:
    lock_id = _path("lock_id", "the lock's id", ID_SCHEMA)
    reason = {"type": "string", "description": "why: one line of 1-200 characters (required)"}
    body = {"oneOf": [
        {"type": "object", "additionalProperties": False,
         "required": ["camera", "start", "end", "note"],
         "properties": {"camera": {"type": "string", "nullable": True,
                                   "description": "null: every camera (admins only)"},
                        "start": {"type": "string"}, "end": {"type": "string"},
                        "note": reason, "tz": {"type": "string"}}},
        {"type": "object", "additionalProperties": False, "required": ["recording", "note"],
         "properties": {"recording": {"type": "integer"}, "note": reason}}]}
    return {
        "/api/v1/locks": {
            "get": _operation("List locks, latest range first",
                              {"200": {**_json("locks", _list_of("Lock")),
                                       "headers": LINK_HEADER},
                               "404": _error("no such camera")},
                              parameters=[
                                  _query("camera", "the camera's name", CAMERA_QUERY),
                                  _query("start", ISO_TIME, TIME_QUERY),
                                  _query("end", ISO_TIME, TIME_QUERY), TZ_PARAM,
                                  _query("limit", "page size, 1-500, default 100",
                                         {"type": "integer", "minimum": 1, "maximum": 500}),
                                  _query("offset", "locks to skip",
                                         {"type": "integer", "minimum": 0,
                                          "maximum": MAX_OFFSET})], tag="locks"),
            "post": _operation("Lock a range of a camera (or all) or one recording",
                               {"201": {**_json("the lock", _ref("Lock")),
                                        "headers": {"Location": {"schema": {"type": "string"}}}},
                                "403": _error("a viewer's lock on every camera, or over "
                                              "the viewer caps (locks:, hours:)"),
                                "404": _error("no such camera or recording")},
                               body=body, tag="locks")},
        "/api/v1/locks/limits": {
            "get": _operation("The viewer caps and what the caller's viewer locks take of them",
                              {"200": _json("the caps and their use", _ref("LockLimits"))},
                              tag="locks")},
        "/api/v1/locks/{lock_id}": {
            "get": _operation("One lock", {"200": _json("the lock", _ref("Lock")),
                                           "404": _error("no such lock")},
                              parameters=[lock_id], tag="locks"),
            "delete": _operation("Remove a lock (its maker or an admin)",
                                 {"204": {"description": "removed"},
                                  "403": _error("neither its maker nor an admin"),
                                  "404": _error("no such lock")},
                                 parameters=[lock_id], tag="locks")},
    }


def _events_paths() -> dict[str, Schema]:
    params = [_query("camera", "the camera's name", CAMERA_QUERY),
              _query("type", "what to list", {"type": "string", "enum": list(EVENT_TYPES)}),
              _query("start", ISO_TIME, TIME_QUERY), _query("end", ISO_TIME, TIME_QUERY),
              TZ_PARAM,
              _query("person", "face sightings of this person (a name, any case) or of "
                     "`unknown` faces; with type face or all (then sightings only)",
                     {"type": "string", "maxLength": 80}),
              _query("limit", f"page size, 1-{MAX_PAGE_SIZE} (larger: capped)",
                     {"type": "integer", "minimum": 1}),
              _query("page", f"the page, from 1; at most {MAX_OFFSET} // limit + 1",
                     {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET + 1})]
    settings = _json("the alert settings", _ref("AlertSettings"))
    return {
        "/api/v1/events": {"get": _operation(
            "Alerts, outages, motion events and face sightings, newest first",
            {"200": {**_json("events", {"type": "array", "items": {"oneOf": [
                _ref("Alert"), _ref("Outage"), _ref("Motion"), _ref("Face")]}}),
                "headers": LINK_HEADER}},
            parameters=params, tag="events")},
        "/api/v1/events/motion/{event_id}/snapshot.jpg": {"get": _operation(
            "The JPEG a detector took at a motion event's peak",
            {"200": {"description": "the picture", "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
             "304": {"description": "not modified (If-None-Match)"},
             "403": _error("the snapshot's path leaves the storage"),
             "404": _error("no such event, or it has no snapshot on disk")},
            parameters=[_path("event_id", "the motion event's id", ID_SCHEMA)], tag="events")},
        "/api/v1/alerts/motion": {
            "get": _operation("When motion alerts are armed: away, armed hours, time zone",
                              {"200": _json("the schedule", _ref("MotionSchedule"))},
                              admin=True, tag="alerts"),
            "put": _operation(
                "Change the away switch, the armed hours or the site's time zone",
                {"200": _json("the schedule", _ref("MotionSchedule"))}, admin=True,
                tag="alerts", body={
                    "type": "object", "additionalProperties": False, "properties": {
                        "away": {"type": "boolean"},
                        "armed_hours": {"type": "string", "description": HOURS},
                        "camera_hours": {"type": "object", "additionalProperties": {
                            "type": "string", "description": HOURS + "; empty: as all"}},
                        "timezone": {"type": "string", "maxLength": 64,
                                     "description": "IANA name; empty: the hub's own"}}})},
        "/api/v1/alerts/settings": {"get": _operation(
            "Whether email is on, its recipients and the muted cameras", {"200": settings},
            admin=True, tag="alerts")},
        "/api/v1/alerts/addresses": {"put": _operation(
            "Set the alert addresses (an empty list: the config file's)", {"200": settings},
            admin=True, tag="alerts",
            body={"type": "object", "required": ["addresses"], "properties": {
                "addresses": {"type": "array", "maxItems": alerting.MAX_ADDRESSES,
                              "items": {"type": "string", "description":
                                        "name@domain.tld; blank entries are dropped"}}}})},
        "/api/v1/alerts/mute": {"post": _operation(
            "Mute a camera's alert emails for some hours (0 unmutes)",
            {"200": _json("the mute", {"type": "object", "required": ["camera", "muted_until"],
                                       "properties": {"camera": {"type": "string"},
                                                      "muted_until": NULLABLE_TIME}}),
             "404": _error("no such camera")},
            admin=True, tag="alerts",
            body={"type": "object", "required": ["camera", "hours"], "properties": {
                "camera": {"type": "string"},
                "hours": {"type": "number", "minimum": 0,
                          "maximum": alerting.MAX_MUTE.total_seconds() / 3600}}})},
        "/api/v1/alerts/test": {
            "post": _operation("Queue a test email",
                               {"202": {**_json("the queued alert", _ref("Alert")),
                                        "headers": {"Location": {"schema": {"type": "string"}}}}},
                               admin=True, tag="alerts"),
            "get": _operation("The newest test email and its delivery status",
                              {"200": _json("the alert", _ref("Alert")),
                               "404": _error("no test email was sent yet")},
                              admin=True, tag="alerts")},
    }


def _cameras_paths() -> dict[str, Schema]:
    outcome = {"200": _json("the hub answered", _ref("Command")),
               "202": _json("the hub has not answered yet", _ref("Command"))}
    not_here = _error("a bad value, or a camera not added here as a pull camera")
    return {
        "/api/v1/cameras": {
            "get": _operation("Every camera with its live status",
                              {"200": _json("cameras", _list_of("Camera"))}, tag="cameras"),
            "post": _operation(
                "Add an RTSP camera for the hub to pull",
                {"201": _json("the command and the new camera", {"allOf": [
                    _ref("Command"), {"type": "object", "required": ["camera"]}]}),
                 "409": _error("a camera of that name exists")},
                admin=True, tag="cameras",
                body={"type": "object", "required": ["name", "url"], "properties": {
                    "name": {"type": "string", "pattern": CAMERA_NAME},
                    "url": {"type": "string", "maxLength": cameras_service.MAX_URL_LENGTH},
                    "location": {"type": "string"},
                    "hub": {"type": "string", "description": "the hub that pulls it (needed "
                            "only when several hubs record into the catalog)"}}})},
        "/api/v1/cameras/{camera}": {
            "get": _operation("One camera with its live status",
                              {"200": _json("the camera", _ref("Camera")),
                               "404": _error("no such camera")},
                              parameters=[CAMERA_PATH], tag="cameras"),
            "patch": _operation(
                "Change a pull camera's location and/or URL",
                {**outcome, "400": not_here, "404": _error("no such camera")},
                admin=True, parameters=[CAMERA_PATH], tag="cameras",
                body={"type": "object", "additionalProperties": False, "properties": {
                    "location": {"type": "string"}, "url": {"type": "string"}}}),
            "delete": _operation(
                "Stop pulling a camera added here (its footage stays)",
                {**outcome, "400": not_here, "404": _error("no such camera")},
                admin=True, parameters=[CAMERA_PATH], tag="cameras")},
        "/api/v1/cameras/{camera}/{action}": {"post": _operation(
            "Restart, disconnect, enable, disable, approve or reject a camera",
            {**outcome, "400": _error("an unknown action, or one that does not apply"),
             "404": _error("no such camera")},
            admin=True, tag="cameras",
            parameters=[CAMERA_PATH, _path("action", "what to do", {
                "type": "string", "enum": list(cameras_service.CONTROL_ACTIONS)})])},
        "/api/v1/commands/{command_id}": {"get": _operation(
            "A command sent earlier and the hub's answer",
            {"200": _json("the command", _ref("Command")), "404": _error("no such command")},
            admin=True, tag="cameras",
            parameters=[_path("command_id", "the command's id", ID_SCHEMA)])},
    }


def _motion_paths() -> dict[str, Schema]:
    point = {"type": "array", "minItems": 2, "maxItems": 2,
             "items": {"type": "number", "minimum": 0, "maximum": 1}}
    mask = {"type": "array", "maxItems": motion_service.MAX_POLYGONS, "items": {
        "type": "array", "minItems": 3, "maxItems": motion_service.MAX_POINTS, "items": point}}
    body = {"type": "object", "additionalProperties": False, "properties": {
        "enabled": {"type": "boolean"}, "alerts": {"type": "boolean"}, "mask": mask,
        "sensitivity": {"type": "integer", "minimum": motion_service.SENSITIVITY_MIN,
                        "maximum": motion_service.SENSITIVITY_MAX}}}
    settings = _json("the camera's motion settings", _ref("MotionSettings"))
    return {"/api/v1/cameras/{camera}/motion": {
        "get": _operation("A camera's motion settings", {"200": settings,
                                                         "404": _error("no such camera")},
                          admin=True, parameters=[CAMERA_PATH], tag="cameras"),
        "put": _operation("Change a camera's motion settings (its detector reloads them)",
                          {"200": settings, "404": _error("no such camera")}, admin=True,
                          parameters=[CAMERA_PATH], body=body, tag="cameras")}}


JPEG_ANSWER: Schema = {"description": "the picture", "content": {
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}
PERSON_PATH = _path("person_id", "the person's id", ID_SCHEMA)


def _people_paths() -> dict[str, Schema]:
    person = _json("the person, with their samples", _ref("PersonDetail"))
    fit = ("the person has 20 samples, the gallery is full, or the face looks like another "
           "person or is far from this person's samples (force overrides the last two)")
    name = {"type": "string", "maxLength": faces_service.MAX_NAME}
    photo_body = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["photo"], "properties": {
            "photo": {"type": "string", "format": "binary",
                      "description": f"a JPEG or PNG of one face, at most "
                                     f"{MAX_PHOTO_BYTES // (1024 * 1024)} MiB"},
            "force": {"type": "string", "enum": ["1", "0", "true", "false", ""]}}}}}}
    enroll_photo = _operation(
        "Add a sample from a photo of the person's face alone",
        {"201": _json("the new sample", _ref("Sample")),
         "400": _error("no photo field, not an image, no face, or several faces"),
         "404": _error("no such person"), "409": _error(fit),
         "413": _error("the photo is too large"), "415": _error("not multipart/form-data"),
         "503": _error("the face engine is not installed")},
        admin=True, parameters=[PERSON_PATH], tag="people")
    enroll_photo["requestBody"] = photo_body
    return {
        "/api/v1/people": {
            "get": _operation("Everyone the cameras know, by name",
                              {"200": _json("people", _list_of("Person"))}, tag="people"),
            "post": _operation(
                "Add a person", {"201": {**person, "headers": {
                    "Location": {"schema": {"type": "string"}}}},
                    "409": _error("a person of that name (any case) exists")},
                admin=True, tag="people", body={
                    "type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"name": name, "alert": {"type": "boolean"}}})},
        "/api/v1/people/{person_id}": {
            "get": _operation("A person with their samples",
                              {"200": person, "404": _error("no such person")},
                              parameters=[PERSON_PATH], tag="people"),
            "patch": _operation(
                "Rename a person or switch their alert",
                {"200": person, "404": _error("no such person"),
                 "409": _error("a person of that name exists")}, admin=True,
                parameters=[PERSON_PATH], tag="people", body={
                    "type": "object", "additionalProperties": False,
                    "properties": {"name": name, "alert": {"type": "boolean"}}}),
            "delete": _operation(
                "Delete a person and their samples; their sightings are erased",
                {"204": {"description": "deleted"}, "404": _error("no such person")},
                admin=True, parameters=[PERSON_PATH], tag="people")},
        "/api/v1/people/{person_id}/photos": {"post": enroll_photo},
        "/api/v1/people/{person_id}/sightings": {"post": _operation(
            "Add a sample from a camera's face sighting (and name it)",
            {"201": _json("the new sample", _ref("Sample")),
             "400": _error("no such sighting, erased, or without face data"),
             "404": _error("no such person"), "409": _error(fit),
             "503": _error("the storage of the sighting's hub is not reachable")},
            admin=True, parameters=[PERSON_PATH], tag="people", body={
                "type": "object", "additionalProperties": False, "required": ["sighting"],
                "properties": {"sighting": ID_SCHEMA, "relabel": {"type": "boolean"},
                               "force": {"type": "boolean"}}})},
        "/api/v1/people/{person_id}/samples/{sample_id}": {"delete": _operation(
            "Delete a sample", {"204": {"description": "deleted"},
                                "404": _error("no such sample of this person")},
            admin=True, parameters=[PERSON_PATH, _path("sample_id", "the sample's id",
                                                       ID_SCHEMA)], tag="people")},
        "/api/v1/people/{person_id}/samples/{sample_id}/crop.jpg": {"get": _operation(
            "The picture of a sample's face",
            {"200": JPEG_ANSWER, "304": {"description": "not modified (If-None-Match)"},
             "404": _error("no such sample, or it has no picture")},
            parameters=[PERSON_PATH, _path("sample_id", "the sample's id", ID_SCHEMA)],
            tag="people")},
        "/api/v1/people/{person_id}/merge": {"post": _operation(
            "Merge a person into another (samples and sightings move, the first goes)",
            {"200": person, "404": _error("no such person"),
             "409": _error(f"more than {faces_service.MAX_SAMPLES_PER_PERSON} samples")},
            admin=True, parameters=[PERSON_PATH], tag="people", body={
                "type": "object", "required": ["into"],
                "properties": {"into": ID_SCHEMA}})},
        "/api/v1/people/{person_id}/export.zip": {"get": _operation(
            "A person's face data: person.json, sample and sighting crops",
            {"200": {"description": "the ZIP", "content": {"application/zip": {
                "schema": {"type": "string", "format": "binary"}}}},
             "404": _error("no such person")},
            admin=True, parameters=[PERSON_PATH], tag="people")},
        "/api/v1/events/face/{sighting_id}/crop.jpg": {"get": _operation(
            "The picture of a face sighting",
            {"200": JPEG_ANSWER, "304": {"description": "not modified (If-None-Match)"},
             "403": _error("the crop's path leaves the storage"),
             "404": _error("no such sighting, erased, or no picture on disk"),
             "503": _error("the storage of the sighting's hub is not reachable")},
            parameters=[_path("sighting_id", "the sighting's id", ID_SCHEMA)],
            tag="events")},
        "/api/v1/faces/settings": {
            "get": _operation("The match threshold and when unknown faces are emailed",
                              {"200": _json("the settings", _ref("FacesSettings"))},
                              admin=True, tag="people"),
            "put": _operation(
                "Change the match threshold or the armed hours",
                {"200": _json("the settings", _ref("FacesSettings"))}, admin=True,
                tag="people", body={
                    "type": "object", "additionalProperties": False, "properties": {
                        "threshold": {"type": "number",
                                      "minimum": faces_settings.THRESHOLD_MIN,
                                      "maximum": faces_settings.THRESHOLD_MAX},
                        "armed_hours": {"type": "string", "description": HOURS},
                        "armed_hours_by_camera": {"type": "object", "additionalProperties": {
                            "type": "string", "description": HOURS + "; empty: as all"}}}})},
        "/api/v1/cameras/{camera}/faces": {
            "get": _operation("A camera's face switches",
                              {"200": _json("the switches", _ref("CameraFaces")),
                               "404": _error("no such camera")},
                              admin=True, parameters=[CAMERA_PATH], tag="cameras"),
            "put": _operation(
                "Change a camera's face switches",
                {"200": _json("the switches", _ref("CameraFaces")),
                 "404": _error("no such camera")}, admin=True, parameters=[CAMERA_PATH],
                tag="cameras", body={
                    "type": "object", "additionalProperties": False, "properties": {
                        "enabled": {"type": "boolean"},
                        "unknown_alerts": {"type": "boolean"}}})},
    }


def _other_paths() -> dict[str, Schema]:
    return {
        "/api/v1/health": {"get": _operation(
            "Whether the NVR works (no login: counts only, no names)",
            {"200": _json("ok or degraded", _ref("Health")),
             "503": _json("down, or a camera records nothing", _ref("Health"))},
            public=True, tag="monitoring")},
        "/api/v1/openapi.json": {"get": _operation(
            "This document", {"200": _json("OpenAPI 3.0", {"type": "object"})},
            tag="meta")},
    }


def _schemas() -> dict[str, Schema]:
    string, number = {"type": "string"}, {"type": "number"}
    integer, boolean = {"type": "integer"}, {"type": "boolean"}
    nullable_string = {"type": "string", "nullable": True}

    def obj(properties: dict[str, Schema], *optional: str) -> Schema:
        return {"type": "object", "properties": properties,
                "required": [key for key in properties if key not in optional]}

    nullable_integer = {"type": "integer", "nullable": True}
    nullable_number = {"type": "number", "nullable": True}
    box = obj({"x": number, "y": number, "w": number, "h": number})
    sample = obj({"id": integer, "source": {"type": "string", "enum": ["photo", "sighting"]},
                  "created": TIME_OUT, "crop": nullable_string,
                  "relabelled": {**integer, "description": "sightings named (enrolment "
                                                           "from a sighting)"}}, "relabelled")
    person = {"id": integer, "name": string, "alert": boolean, "created": TIME_OUT,
              "last_seen": {**obj({"time": TIME_OUT, "camera": string}), "nullable": True},
              "photo": nullable_string}
    return {
        "Error": obj({"error": {**string, "description": "what went wrong; for a bad "
                                "parameter its name first (`start: ...`)"}}),
        "Recording": obj({"id": integer, "camera": string, "location": string,
                          "start": TIME_OUT, "end": TIME_OUT, "duration": number,
                          "size": integer, "status": string, "backfilled": boolean,
                          "file": string}),
        "Timeline": obj({
            "start": TIME_OUT, "end": TIME_OUT, "now": TIME_OUT, "resolution": number,
            "cameras": {"type": "array", "items": obj({
                "camera": string, "live": boolean,
                "footage": {"type": "array", "items": obj({
                    "start": TIME_OUT, "end": TIME_OUT, "live": boolean,
                    "first_segment": {"type": "integer", "nullable": True}})},
                "backfilled": {"type": "array", "items": obj({"start": TIME_OUT,
                                                              "end": TIME_OUT})},
                "gaps": {"type": "array", "items": obj({
                    "start": TIME_OUT, "end": TIME_OUT,
                    "reasons": {"type": "array", "items": string}, "reason_text": string})},
                "motion": obj({
                    "counts": {"type": "array", "items": integer},
                    "events": {"type": "array", "items": obj({
                        "id": integer, "start": TIME_OUT, "end": NULLABLE_TIME,
                        "score": number, "has_snapshot": boolean, "end_lost": boolean})}}),
                "faces": {"type": "array", "items": obj({
                    "id": integer, "time": TIME_OUT, "person": nullable_string,
                    "person_id": nullable_integer})}})}}),
        "StreamLink": obj({"url": {**string, "description": "the playlist's absolute URL, "
                                   "token included: play it in VLC, mpv, ffplay"},
                           "expires": TIME_OUT}),
        "Lock": obj({"id": integer, "camera": nullable_string, "start": TIME_OUT,
                     "end": TIME_OUT, "note": string, "created_by": string,
                     "created_at": TIME_OUT, "admin": boolean, "yielded_at": NULLABLE_TIME,
                     "original_start": NULLABLE_TIME}),
        "LockLimits": obj({"max_locks": integer, "max_hours": number, "used_locks": integer,
                           "used_hours": number, "capped": boolean}),
        "Alert": obj({"type": {"type": "string", "enum": ["alert"]}, "id": integer,
                      "time": TIME_OUT, "kind": string, "camera": nullable_string,
                      "subject": string, "body": string, "details": {"type": "object"},
                      "status": string, "sent_at": NULLABLE_TIME,
                      "attempts": integer, "last_error": nullable_string,
                      "next_attempt_at": NULLABLE_TIME,
                      "recipients": {"type": "array", "items": string},
                      "requested_by": nullable_string},
                     "attempts", "last_error", "next_attempt_at", "recipients",
                     "requested_by"),
        "Outage": obj({"type": {"type": "string", "enum": ["outage"]}, "id": integer,
                       "time": TIME_OUT, "camera": string, "start": TIME_OUT,
                       "end": NULLABLE_TIME, "ongoing": boolean, "duration": number,
                       "reason": string, "reason_text": string, "detail": string,
                       "backfilled_seconds": number, "dropped_seconds": number}),
        "Motion": obj({"type": {"type": "string", "enum": ["motion"]}, "id": integer,
                       "time": TIME_OUT, "camera": string, "start": TIME_OUT,
                       "end": NULLABLE_TIME, "ongoing": boolean, "end_lost": boolean,
                       "duration": nullable_number, "score": number,
                       "box": obj({"x": number, "y": number, "w": number, "h": number}),
                       "source": string, "snapshot": nullable_string, "play": string}),
        "Face": obj({"type": {"type": "string", "enum": ["face"]}, "id": integer,
                     "time": TIME_OUT, "camera": string, "start": TIME_OUT,
                     "end": NULLABLE_TIME, "ongoing": boolean, "end_lost": boolean,
                     "person": nullable_string,
                     "person_id": nullable_integer, "distance": nullable_number, "box": box,
                     "size": integer, "crop": nullable_string, "play": string}),
        "Person": obj({**person, "samples": {**integer, "description": "how many"}}),
        "PersonDetail": obj({**person, "samples": {"type": "array", "items": sample}}),
        "Sample": sample,
        "FacesSettings": obj({"threshold": number, "armed_hours": string,
                              "armed_hours_by_camera": {"type": "object",
                                                        "additionalProperties": string}}),
        "CameraFaces": obj({"camera": string, "enabled": boolean, "unknown_alerts": boolean,
                            "seen_at": NULLABLE_TIME, "active": boolean}),
        "MotionSettings": obj({"camera": string, "enabled": boolean, "sensitivity": integer,
                               "mask": {"type": "array", "items": {"type": "array"}},
                               "alerts": boolean, "updated_at": NULLABLE_TIME}),
        "MotionSchedule": obj({"away": boolean, "armed_hours": string,
                               "camera_hours": {"type": "object",
                                                "additionalProperties": string},
                               "timezone": string}),
        "AlertSettings": obj({
            "hub_running": boolean, "heartbeat_at": NULLABLE_TIME, "email_enabled": boolean,
            "recipients": {"type": "array", "items": string},
            "recipients_source": {"type": "string",
                                  "enum": ["environment", "web", "config", "none"]},
            "web_addresses": {"type": "array", "items": string},
            "mutes": {"type": "array", "items": obj({"camera": string, "until": TIME_OUT})}}),
        "Camera": obj({
            "name": string, "location": string,
            "kind": {"type": "string", "enum": ["push", "pull"]}, "enabled": boolean,
            "approval": {"type": "string", "enum": ["approved", "pending", "rejected"]},
            "state": string, "online": boolean, "stale": boolean,
            "connected_since": NULLABLE_TIME, "offline_since": NULLABLE_TIME,
            "uptime": {"type": "number", "nullable": True}, "fps": number, "bitrate": number,
            "restarts": integer, "last_segment_end": NULLABLE_TIME, "hub": string,
            "faces": obj({"enabled": boolean, "active": boolean, "seen_at": NULLABLE_TIME}),
            "peer": string, "source": string, "last_error": string, "editable": boolean},
            "peer", "source", "last_error", "editable"),
        "Command": obj({"command": integer, "camera": string, "action": string,
                        "done": boolean, "ok": {"type": "boolean", "nullable": True},
                        "result": nullable_string}),
        "Health": obj({
            "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
            "time": TIME_OUT, "database": {"type": "string", "enum": ["ok", "error"]},
            "hub": {"type": "object"}, "cameras": {"type": "object", "nullable": True},
            "disk": {"type": "object", "nullable": True}, "checks": {"type": "object"},
            "not_recording": {"type": "array", "items": string},
            "hubs": {"type": "array", "items": obj({
                "id": string, "running": boolean, "heartbeat_at": NULLABLE_TIME,
                "heartbeat_age_seconds": {"type": "number", "nullable": True},
                "disk_free_bytes": {"type": "integer", "nullable": True},
                "disk_total_bytes": {"type": "integer", "nullable": True},
                "footage_bytes": integer, "listen": string, "storage_reachable": boolean})},
            "problems": {"type": "array", "items": string}},
            "not_recording", "hubs", "problems"),
    }


def document() -> Schema:
    """Return the OpenAPI 3.0 document of API v1."""
    paths: dict[str, Schema] = {}
    for part in (_recordings_paths, _timeline_paths, _locks_paths, _events_paths, _cameras_paths,
                 _motion_paths, _people_paths, _other_paths):
        paths.update(part())
    return {
        "openapi": "3.0.3",
        "info": {"title": "NVR API", "version": "1",
                 "description": "Find, play and export footage; locks; events and alerts; "
                                "cameras. docs/api.md says it in words. Errors are "
                                '`{"error": "..."}`; a bad parameter is a 400 that names it. '
                                "Session requests that change something need the page's "
                                "CSRF token in `X-CSRFToken`."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a user's API token (Users page)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "nvr_session",
                            "description": "the browser's session, from /auth/login"},
                "streamLink": {"type": "apiKey", "in": "query", "name": "st",
                               "description": "a stream link's token (POST "
                                              "/api/v1/playback/{camera}/link): opens that "
                                              "playlist and its segments only"}},
            "schemas": _schemas()},
    }


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """Serve the OpenAPI 3 document of API v1 (for any logged-in user or API token)."""
    return jsonify(document())
