"""API endpoints of people and their faces (docs/api.md, "People"): the list and each person
for every user; adding, enrolling, renaming, merging, deleting and exporting for admins."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

import flask
from flask import current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import exports, face_engine, faces_export, faces_settings
from .. import faces_service as people
from ..security import admin_required, body_limit
from . import bp
from .motion import stored_jpeg

MAX_PHOTO_BYTES = face_engine.MAX_PHOTO_BYTES  # one photo; the app's 1 MiB is for all else
MULTIPART_SLACK = 64 * 1024  # the form's other parts and boundaries
CROP_CACHE = "private, max-age=60"  # a sighting's final report may replace its crop
FORCE_VALUES = {"1": True, "true": True, "0": False, "false": False, "": False}


def _jpeg(data: bytes) -> flask.Response:
    """Answer a crop with an ETag (304 when the browser has it)."""
    response = current_app.response_class(data, mimetype="image/jpeg")
    response.add_etag()
    response.headers["Cache-Control"] = CROP_CACHE
    return response.make_conditional(request)


def _json_object() -> Mapping[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise people.BadRequest("body: expected a JSON object (Content-Type: application/json)")
    return data


def _force() -> bool:
    value = request.form.get("force", request.args.get("force", ""))
    if value not in FORCE_VALUES:
        raise people.BadRequest("force: must be 1 or 0")
    return FORCE_VALUES[value]


def _user() -> str:
    return str(current_user.username)


@bp.get("/people")
def list_people() -> ResponseReturnValue:
    """List every person the cameras know, by name."""
    return jsonify([person.to_json() for person in people.list_people()])


@bp.post("/people")
@admin_required
def create_person() -> ResponseReturnValue:
    """Add a person: ``{"name": "Alice", "alert": false}``; 201 with its Location."""
    data = _json_object()
    unknown = sorted(set(data) - {"name", "alert"})
    if unknown:
        raise people.BadRequest(f"{unknown[0]}: unknown field; use name or alert")
    person = people.create_person(data.get("name"), data.get("alert"), _user())
    response = jsonify(person.to_json(with_samples=True))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_person", person_id=person.id)
    return response


@bp.get("/people/<int:person_id>")
def get_person(person_id: int) -> ResponseReturnValue:
    """Return a person with their samples."""
    return jsonify(people.get_person(person_id).to_json(with_samples=True))


@bp.patch("/people/<int:person_id>")
@admin_required
def update_person(person_id: int) -> ResponseReturnValue:
    """Rename a person or switch their alert: ``{"name"?, "alert"?}``."""
    person = people.update_person(person_id, dict(_json_object()), _user())
    return jsonify(person.to_json(with_samples=True))


@bp.delete("/people/<int:person_id>")
@admin_required
def delete_person(person_id: int) -> ResponseReturnValue:
    """Delete a person and their samples; their sightings are erased (the footage stays)."""
    people.delete_person(person_id, _user())
    return "", 204


class _Unsupported(people.FacesError):
    status = 415


class _TooLarge(people.FacesError):
    status = 413


def _photo() -> bytes:
    """The uploaded photo of a multipart request (at most MAX_PHOTO_BYTES)."""
    if request.mimetype != "multipart/form-data":
        raise _Unsupported("send the photo as multipart/form-data, in the field 'photo'")
    limit = MAX_PHOTO_BYTES + MULTIPART_SLACK
    # refused before parsing: werkzeug's parser, stopped half-way, leaves its temp file open
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge(f"photo: larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB")
    upload = request.files.get("photo")
    if upload is None:
        raise people.BadRequest("photo: the field 'photo' with a JPEG or PNG file is missing")
    data = upload.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        raise _TooLarge(f"photo: larger than {MAX_PHOTO_BYTES // (1024 * 1024)} MiB")
    return data


@bp.post("/people/<int:person_id>/photos")
@body_limit(MAX_PHOTO_BYTES + MULTIPART_SLACK)  # before the CSRF check reads the body
@admin_required
def enroll_photo(person_id: int) -> ResponseReturnValue:
    """Add a sample from a photo (multipart field ``photo``; ``force=1`` skips the fit check)."""
    sample = people.enroll_photo(person_id, _photo(), _force(), _user())
    return jsonify(sample.to_json()), 201


@bp.post("/people/<int:person_id>/sightings")
@admin_required
def enroll_sighting(person_id: int) -> ResponseReturnValue:
    """Add a sample from a sighting: ``{"sighting": 77, "relabel": false, "force": false}``."""
    data = _json_object()
    unknown = sorted(set(data) - {"sighting", "relabel", "force"})
    if unknown:
        raise people.BadRequest(f"{unknown[0]}: unknown field; use sighting, relabel or "
                                "force")
    relabel = people.check_flag(data.get("relabel", False), "relabel")
    force = people.check_flag(data.get("force", False), "force")
    sample, named = people.enroll_sighting(person_id, data.get("sighting"), relabel, force,
                                           _user())
    return jsonify({**sample.to_json(), "relabelled": named}), 201


@bp.delete("/people/<int:person_id>/samples/<int:sample_id>")
@admin_required
def delete_sample(person_id: int, sample_id: int) -> ResponseReturnValue:
    """Delete one sample of a person."""
    people.delete_sample(person_id, sample_id, _user())
    return "", 204


@bp.get("/people/<int:person_id>/samples/<int:sample_id>/crop.jpg")
def sample_crop(person_id: int, sample_id: int) -> ResponseReturnValue:
    """Serve the picture of a sample's face."""
    crop = people.sample_crop(person_id, sample_id)
    return _jpeg(crop)


@bp.get("/events/face/<int:sighting_id>/crop.jpg")
def face_crop(sighting_id: int) -> ResponseReturnValue:
    """Serve the picture of a sighting's face (404: none, erased, or not on disk)."""
    return stored_jpeg(lambda: people.sighting_crop_file(sighting_id),
                       f"face sighting {sighting_id} has no picture on disk", CROP_CACHE)


@bp.post("/people/<int:person_id>/merge")
@admin_required
def merge_person(person_id: int) -> ResponseReturnValue:
    """Merge a person into another: ``{"into": 5}``; answers with the other person."""
    data = _json_object()
    person = people.merge(person_id, data.get("into"), _user())
    return jsonify(person.to_json(with_samples=True))


@bp.get("/people/<int:person_id>/export.zip")
@admin_required
def export_person(person_id: int) -> ResponseReturnValue:
    """Download a person's face data: samples, sightings, their embeddings and crops."""
    name, members, workdir = faces_export.build(person_id,
                                                current_app.config["STORAGE_ROOT"])
    response = current_app.response_class(exports.stream_zip(members, workdir),
                                          mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    # a client gone before the first byte: the generator never ran, so its cleanup neither
    response.call_on_close(lambda: shutil.rmtree(workdir, ignore_errors=True))
    return response


@bp.get("/faces/settings")
@admin_required
def faces_settings_view() -> ResponseReturnValue:
    """Return the match threshold and the hours unknown faces are emailed."""
    return jsonify(faces_settings.get_settings().to_json())


@bp.put("/faces/settings")
@admin_required
def set_faces_settings() -> ResponseReturnValue:
    """Change the threshold or the armed hours (for all cameras or per camera)."""
    data = _json_object()
    return jsonify(faces_settings.save_settings(data, _user()).to_json())


@bp.get("/cameras/<camera>/faces")
@admin_required
def camera_faces(camera: str) -> ResponseReturnValue:
    """Return a camera's face switches: recognition on, emails for unknown faces."""
    return jsonify(faces_settings.camera_faces(camera).to_json())


@bp.put("/cameras/<camera>/faces")
@admin_required
def set_camera_faces(camera: str) -> ResponseReturnValue:
    """Change a camera's face switches (``enabled``, ``unknown_alerts``)."""
    data = _json_object()
    return jsonify(faces_settings.save_camera_faces(camera, data, _user()).to_json())
