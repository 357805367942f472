"""Face data for the web app's tests: real photos' faces, and face sightings stored as the hub
stores them (a catalog row, its crop under the test storage root)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
from flask import Flask
from sqlalchemy import select

from nvrlib import faces
from nvrlib.catalog.models import Camera, FaceSighting, Person
from tests.support.face_photos import photos_dir
from webapp import face_engine
from webapp.extensions import db


def photo(name: str) -> bytes:
    """Return the bytes of a cached test photo (obama.jpg, biden.jpg, astronaut.png, ...)."""
    return (photos_dir() / name).read_bytes()


def side_by_side(first: str, second: str) -> bytes:
    """Return a JPEG of two photos next to each other (two faces in one picture)."""
    left, right = (faces.decode_image(photo(name)) for name in (first, second))
    height = min(left.shape[0], right.shape[0])
    left, right = (cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height))
                   for image in (left, right))
    ok, data = cv2.imencode(".jpg", np.hstack([left, right]))
    assert ok
    return data.tobytes()


def blank_png(width: int = 320, height: int = 240) -> bytes:
    """Return a grey PNG without any face."""
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


def face_of(app: Flask, name: str) -> face_engine.PhotoFace:
    """The face of a test photo, found by the web app's own engine (one per process)."""
    with app.app_context():
        return face_engine.one_face(photo(name))


def camera_id(app: Flask, camera: str) -> int:
    """Return the id of ``camera``, adding it to the catalog first if it is not there."""
    with app.app_context():
        found = db.session.scalar(select(Camera.id).where(Camera.name == camera))
        if found is not None:
            return found
        row = Camera(name=camera)
        db.session.add(row)
        db.session.commit()
        return row.id


def person_id(app: Flask, name: str) -> int | None:
    """Return the id of the person called ``name`` (None: none)."""
    with app.app_context():
        return db.session.scalar(select(Person.id).where(Person.name == name))


def add_sighting(app: Flask, camera: str, start: dt.datetime, *, face: face_engine.PhotoFace,
                 person: int | None = None, distance: float | None = None,
                 seconds: float | None = 4.0, key: str | None = None, hub: str = "main",
                 crop_path: str | None = "default") -> int:
    """Store a face sighting as the hub would (its crop written under the storage root)."""
    key = key or f"{camera}-{start.timestamp():.3f}-{person}"
    if crop_path == "default":
        crop_path = f"{camera}/{start:%Y-%m-%d}/faces/{key}.jpg"
    if crop_path is not None and ".." not in crop_path:
        target = Path(app.config["STORAGE_ROOT"]) / crop_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(face.crop)
    cam = camera_id(app, camera)
    with app.app_context():
        row = FaceSighting(
            sighting_key=key, camera_id=cam, hub_id=hub, start_time=start,
            end_time=None if seconds is None else start + dt.timedelta(seconds=seconds),
            person_id=person, distance=distance, box_x=0.4, box_y=0.2, box_w=0.1, box_h=0.18,
            face_size=face.size, score=1.2, embedding=faces.embedding_to_bytes(face.embedding),
            crop_path=crop_path, created_at=start)
        db.session.add(row)
        db.session.commit()
        return row.id


def sighting(app: Flask, sighting_id: int) -> FaceSighting:
    """Return a fresh copy of a sighting's row."""
    with app.app_context():
        row = db.session.get(FaceSighting, sighting_id)
        assert row is not None
        db.session.expunge(row)
        return row
