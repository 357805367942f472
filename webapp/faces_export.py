"""One person's face data as a ZIP (docs/design/faces.md, section 4): ``person.json`` (the
person, the samples with their embeddings, the sightings with theirs), ``samples/<id>.jpg`` and
``sightings/<key>.jpg`` (the crops still on disk). Built in a temp folder on the footage's disk,
as the bulk exports are, and streamed; the folder goes when the answer is closed.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nvrlib import faces
from nvrlib.catalog.models import Camera, FaceSample, FaceSighting

from . import faces_service, hub_storage, media
from .catalog_queries import iso_utc
from .exports import ZipMember
from .extensions import db

logger = logging.getLogger(__name__)


def _embedding(data: bytes | None) -> list[float] | None:
    try:
        return faces.embedding_to_json(faces.embedding_from_bytes(data)) if data else None
    except ValueError:
        return None


def _samples(person_id: int, workdir: Path) -> tuple[list[dict[str, Any]], list[ZipMember]]:
    described, members = [], []
    for sample in db.session.scalars(select(FaceSample).where(FaceSample.person_id == person_id)
                                     .order_by(FaceSample.id)):
        entry = {"id": sample.id, "source": sample.source, "sighting_id": sample.sighting_id,
                 "created": iso_utc(sample.created_at), "created_by": sample.created_by,
                 "embedding": _embedding(sample.embedding), "crop": None}
        if sample.crop:
            name = f"samples/{sample.id}.jpg"
            (workdir / f"sample-{sample.id}.jpg").write_bytes(sample.crop)
            members.append(ZipMember(name, workdir / f"sample-{sample.id}.jpg"))
            entry["crop"] = name
        described.append(entry)
    return described, members


def _sighting_crop(row: FaceSighting) -> Path | None:
    if not row.crop_path:
        return None
    try:
        return hub_storage.stored_file(row.hub_id, row.crop_path)
    except (hub_storage.StorageUnreachable, hub_storage.OutsideStorage) as exc:
        logger.warning("export: the crop of sighting %d is left out: %s", row.id, exc)
        return None


def _sightings(person_id: int) -> tuple[list[dict[str, Any]], list[ZipMember]]:
    described, members = [], []
    rows = db.session.execute(select(FaceSighting, Camera.name)
                              .join(Camera, Camera.id == FaceSighting.camera_id)
                              .where(FaceSighting.person_id == person_id,
                                     FaceSighting.erased_at.is_(None))
                              .order_by(FaceSighting.start_time, FaceSighting.id))
    for row, camera in rows:
        entry = {"id": row.id, "key": row.sighting_key, "camera": camera,
                 "start": iso_utc(row.start_time),
                 "end": iso_utc(row.end_time) if row.end_time else None,
                 "distance": row.distance, "size": row.face_size,
                 "box": {"x": row.box_x, "y": row.box_y, "w": row.box_w, "h": row.box_h},
                 "embedding": _embedding(row.embedding), "crop": None}
        crop = _sighting_crop(row)
        if crop is not None:
            entry["crop"] = f"sightings/{row.sighting_key}.jpg"
            members.append(ZipMember(entry["crop"], crop))
        described.append(entry)
    return described, members


def build(person_id: int, storage_root: str) -> tuple[str, list[ZipMember], Path]:
    """Write a person's export into a new temp folder; return the ZIP's file name, its members
    and the folder (the caller streams them with exports.stream_zip, which removes it)."""
    person = faces_service.get_person(person_id)  # NotFound first: no folder for a 404
    workdir = media.export_workdir(storage_root)
    try:
        samples, sample_files = _samples(person_id, workdir)
        sightings, sighting_files = _sightings(person_id)
        document = {"person": {**person.to_json(), "samples": len(samples)},
                    "samples": samples, "sightings": sightings}
        (workdir / "person.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    members = [ZipMember("person.json", workdir / "person.json"), *sample_files,
               *sighting_files]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in person.name)[:40]
    return f"person_{person.id}_{safe}.zip", members, workdir
