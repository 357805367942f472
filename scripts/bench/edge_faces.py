"""The edge with --faces on and off: its cost, a sighting's latency, and accuracy on the photos.

Starts a real hub (`python -m recorder`, temp storage and SQLite catalog) with Obama enrolled
(one sample, `obama2.jpg`'s embedding written into its catalog as the web app would), then, one
after the other, `python -m edge` playing a scene file at --size and --fps: a still background
in which a face (`obama.jpg`, ~150 px) appears at FACE_AT s of every SCENE_SECONDS (20 s) for
FACE_FOR s; once with `--faces --faces-debounce 10` (so each appearance is its own sighting)
and once without. With --rounds N the two alternate N times and the medians count.

Per run, over --seconds once the live stream is accepted (plus a short warm-up):
- fps encoded: the video packets of the run's finished segments in the hub's storage, per
  second of their span in the catalog (the frames that reached the hub);
- CPU (cores: CPU s per wall s, utime + stime from /proc) of the edge process and, with faces,
  of its worker child (its pid from the edge's "face worker started (pid N)" line);
- frames dropped between capture and encoder ("stream ended (N frames dropped)", target 0) and
  the worker's offers and skips ("faces: N frame(s) checked, M skipped");
- latency of each sighting: its row's `created_at` minus the wall time the face appeared (the
  scene's schedule, from the run's first segment start = the scene's first frame), target
  <= 1 s; and, of that, how long after appearing the frame it was found in was captured
  (the row's `start_time`).

Then, in this process, accuracy on the photos: each photo's face pasted into a grey 1280x720
frame at 91, 130 and 207 px, found at full width and matched (thresholds 0.5 and 0.6) against a
gallery of the *other* photos: right (the person, or unknown for Biden and Collins, who have
no other photo), unknown (a known person not named), wrong (someone else's name), missed.

Run: .venv/bin/python scripts/bench/edge_faces.py [--seconds 60] [--rounds 3] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from edge_motion import frames_dropped  # noqa: E402
from edge_spool import ROOT, Process, bench_hub, cpu_seconds, edge_flags  # noqa: E402

from edge.cli import parse_size  # noqa: E402
from nvrlib.catalog import db as catalog_db  # noqa: E402
from nvrlib.catalog.models import (  # noqa: E402
    Camera, FaceSample, FaceSighting, Person, Segment, utcnow,
)
from nvrlib.faces import Box, FaceEngine, embedding_to_bytes, match  # noqa: E402
from nvrlib.ffmpeg_bin import ffmpeg_exe  # noqa: E402
from tests.support.face_photos import PHOTOS, missing_reason, photos_dir  # noqa: E402

CAMERA = "bench"
SCENE_SECONDS, FACE_AT, FACE_FOR = 20, 10, 4  # a face appears at 10 s of every 20 s, for 4 s
SCENE_FACE = 150  # pixels: the face's side in the scene at 1280x720 (scaled with --size)
DEBOUNCE = "10"  # seconds: shorter than SCENE_SECONDS, so every appearance is a sighting
WARMUP = 3.0  # seconds after the stream is accepted (imports, first encoder, the worker's start)
PEOPLE = {"obama.jpg": "Obama", "obama2.jpg": "Obama", "obama3.jpg": "Obama",
          "biden.jpg": "Biden", "astronaut.png": "Collins"}
SIZES = (91, 130, 207)
THRESHOLDS = (0.5, 0.6)


@dataclass
class Run:
    """What one edge run measured."""

    fps: float
    edge_cpu: float
    worker_cpu: float | None
    dropped: int
    checked: int = 0
    skipped: int = 0
    latencies: list[float] = field(default_factory=list)  # created_at - the face appeared
    found_after: list[float] = field(default_factory=list)  # start_time - the face appeared
    named: int = 0


def paste(photo: np.ndarray, box: Box, side: int, frame_w: int, frame_h: int) -> np.ndarray:
    """A grey frame with the photo's face (and half a face of margin) scaled to ``side`` px."""
    scale = side / box.w
    margin = box.w // 2
    top, left = max(box.y - margin, 0), max(box.x - margin, 0)
    region = photo[top:box.y + box.h + margin, left:box.x + box.w + margin]
    region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    region = region[:frame_h - 40, :frame_w // 2]
    frame = np.full((frame_h, frame_w, 3), 90, np.uint8)
    x, y = frame_w // 2 - side // 2, 20
    frame[y:y + region.shape[0], x:x + region.shape[1]] = region
    return frame


def make_scene(folder: Path, engine: FaceEngine, width: int, height: int, fps: str) -> Path:
    """SCENE_SECONDS of background with obama.jpg in it from FACE_AT for FACE_FOR s (H.264)."""
    photo = cv2.imread(str(photos_dir() / "obama.jpg"))
    (face,) = engine.find(photo, detect_width=800)
    background = np.full((height, width, 3), 90, np.uint8)
    cv2.imwrite(str(folder / "background.png"), background)
    cv2.imwrite(str(folder / "face.png"),
                paste(photo, face.box, SCENE_FACE * width // 1280, width, height))
    parts = (("background", FACE_AT), ("face", FACE_FOR),
             ("background", SCENE_SECONDS - FACE_AT - FACE_FOR))
    inputs: list[str] = []
    for name, seconds in parts:
        inputs += ["-loop", "1", "-t", str(seconds), "-i", str(folder / f"{name}.png")]
    scene = folder / "scene.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *inputs,
                    "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0,format=yuv420p",
                    "-r", fps, "-c:v", "libx264", "-g", fps, str(scene)],
                   check=True, timeout=300)
    return scene


def enroll(catalog: Engine, engine: FaceEngine) -> None:
    """Obama with one sample (obama2.jpg) in the hub's catalog, as the web app writes them."""
    (face,) = engine.find(cv2.imread(str(photos_dir() / "obama2.jpg")), detect_width=800)
    with Session(catalog) as session, session.begin():
        person = Person(name="Obama", name_key="obama", created_by="bench")
        person.samples.append(FaceSample(embedding=embedding_to_bytes(face.embedding),
                                         created_by="bench"))
        session.add(person)


def footage(catalog: Engine, storage: Path, since: dt.datetime,
            window: tuple[dt.datetime, dt.datetime]) -> tuple[dt.datetime, float]:
    """The run's first segment start (the scene's first frame), and its fps in ``window``."""
    with Session(catalog) as session:
        rows = list(session.scalars(
            select(Segment).join(Camera).where(Camera.name == CAMERA, Segment.start_time >= since)
            .order_by(Segment.start_time)))
    inside = [row for row in rows if window[0] <= row.start_time and row.end_time <= window[1]]
    frames = 0
    for row in inside:
        with av.open(str(storage / row.path)) as container:
            frames += sum(1 for packet in container.demux(video=0) if packet.size)
    span = (inside[-1].end_time - inside[0].start_time).total_seconds() if inside else 0.0
    return rows[0].start_time, frames / span if span else 0.0


def sightings(catalog: Engine, since: dt.datetime) -> list[FaceSighting]:
    """The sightings stored since ``since``."""
    with Session(catalog) as session:
        return list(session.scalars(select(FaceSighting).where(FaceSighting.start_time >= since)))


def measure(port: int, work: Path, scene: Path, faces: bool, args: argparse.Namespace,
            catalog: Engine) -> Run:
    """Run one edge playing the scene; return what it measured."""
    argv = [sys.executable, "-m", "edge", "--hub", "127.0.0.1", "--port", str(port),
            "--location", "bench", "--camera", str(scene), "--name", CAMERA, "--fps", args.fps,
            "--size", args.size, "--bitrate", args.bitrate, "--spool-dir", str(work / "spool")]
    argv += ["--faces", "--faces-debounce", DEBOUNCE] if faces else ["--no-faces"]
    launched = utcnow() - dt.timedelta(seconds=1)
    edge = Process(argv, ROOT)
    worker = None
    try:
        edge.wait_line(r"accepted the stream|speaks protocol v2", 60)
        if faces:
            edge.wait_line(r"face worker started \(pid \d+\)", 30)
            worker = int(next(line for line in edge.lines if "face worker started" in line)
                         .rsplit("pid ", 1)[1].rstrip(")"))
        time.sleep(WARMUP)
        cpu0, t0, wall0 = cpu_seconds(edge.proc.pid), time.monotonic(), utcnow()
        worker0 = cpu_seconds(worker) if worker else 0.0
        time.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        edge_cpu = (cpu_seconds(edge.proc.pid) - cpu0) / elapsed
        worker_cpu = (cpu_seconds(worker) - worker0) / elapsed if worker else None
        window = (wall0, utcnow())
    finally:
        edge.stop()
    origin, fps = footage(catalog, work / "rec", launched, window)
    run = Run(fps, edge_cpu, worker_cpu, frames_dropped(edge.lines))
    for line in edge.lines:
        if "frame(s) checked" in line:
            words = line.split("faces: ", 1)[1].split()
            run.checked, run.skipped = int(words[0]), int(words[3])
    for row in sightings(catalog, launched):
        since_origin = (row.start_time - origin).total_seconds()
        loop = round((since_origin - FACE_AT) / SCENE_SECONDS)
        appeared = origin + dt.timedelta(seconds=loop * SCENE_SECONDS + FACE_AT)
        run.latencies.append((row.created_at - appeared).total_seconds())
        run.found_after.append((row.start_time - appeared).total_seconds())
        run.named += row.person_id is not None
    return run


def outcome(found: object, expected: str | None) -> str:
    """right, unknown (a known person not named) or wrong."""
    if found == expected:
        return "right"
    return "unknown" if found is None else "wrong"


def accuracy(engine: FaceEngine) -> tuple[dict[tuple[int, float], dict[str, int]], list[str]]:
    """Counts per (size, threshold), and a line per photo and size with its distance."""
    images = {name: cv2.imread(str(photos_dir() / name)) for name in PEOPLE}
    found = {name: engine.find(image, detect_width=800)[0] for name, image in images.items()}
    counts = {(size, threshold): dict.fromkeys(("right", "unknown", "wrong", "missed"), 0)
              for size in SIZES for threshold in THRESHOLDS}
    lines = []
    for name, image in images.items():
        gallery: dict[str, list[np.ndarray]] = {}
        for other, face in found.items():
            if other != name:
                gallery.setdefault(PEOPLE[other], []).append(face.embedding)
        expected = PEOPLE[name] if PEOPLE[name] in gallery else None
        for size in SIZES:
            faces = engine.find(paste(image, found[name].box, size, 1280, 720))
            if not faces:
                for threshold in THRESHOLDS:
                    counts[size, threshold]["missed"] += 1
                lines.append(f"    {name:14} {size:3} px: no face found")
                continue
            results = [outcome(match(faces[0].embedding, gallery, t).person, expected)
                       for t in THRESHOLDS]
            for threshold, result in zip(THRESHOLDS, results):
                counts[size, threshold][result] += 1
            nearest = match(faces[0].embedding, gallery, 2.0)
            lines.append(f"    {name:14} {size:3} px (box {faces[0].size}): nearest "
                         f"{nearest.person} {nearest.distance:.2f} -> "
                         + ", ".join(f"{r} at {t}" for t, r in zip(THRESHOLDS, results)))
    return counts, lines


def spread(values: Iterable[float]) -> str:
    """Median and max of some seconds, or 'none'."""
    values = list(values)
    if not values:
        return "none"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def report(args: argparse.Namespace, on: list[Run], off: list[Run],
           loads: tuple[float, float]) -> None:
    """Print the runs side by side."""
    def med(runs: list[Run], name: str) -> str:
        values = [getattr(r, name) for r in runs if getattr(r, name) is not None]
        return f"{statistics.median(values):.3f}" if values else "-"

    def each(runs: list[Run], name: str) -> str:
        return " ".join(f"{getattr(r, name):.3f}" for r in runs if getattr(r, name) is not None)

    print(f"edge, scene file at --fps {args.fps} --size {args.size} --bitrate {args.bitrate}, a "
          f"face every {SCENE_SECONDS} s, {args.seconds:g} s x {args.rounds} (medians); load "
          f"average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end (2 shared cores)")
    print(f"  {'':28}{'faces on':>12}{'faces off':>12}")
    for label, name in (("fps encoded", "fps"), ("edge CPU (cores)", "edge_cpu"),
                        ("worker CPU (cores)", "worker_cpu")):
        print(f"  {label:28}{med(on, name):>12}{med(off, name):>12}   "
              f"(on: {each(on, name)}; off: {each(off, name) or '-'})")
    print(f"  {'frames dropped (all runs)':28}{sum(r.dropped for r in on):>12}"
          f"{sum(r.dropped for r in off):>12}   (target 0; on: "
          f"{' '.join(str(r.dropped) for r in on)}; off: {' '.join(str(r.dropped) for r in off)})")
    print(f"  worker: {sum(r.checked for r in on)} frames checked, "
          f"{sum(r.skipped for r in on)} skipped (busy)")
    latencies = [x for r in on for x in r.latencies]
    found_after = [x for r in on for x in r.found_after]
    named = sum(r.named for r in on)
    print(f"  sightings: {len(latencies)}, {named} named Obama")
    print(f"  latency, row created - face appeared: {spread(latencies)} (target <= 1 s)")
    print(f"    the face's frame captured - face appeared (motion gate, rate): "
          f"{spread(found_after)}")
    print(f"    row created - the face's frame captured (worker, report, hub): "
          f"{spread(a - b for a, b in zip(latencies, found_after))}")


def main() -> int:
    """Parse the flags, run the hub and the edges, print the figures side by side."""
    parser = edge_flags(__doc__.splitlines()[0], seconds=60.0, rounds=3)
    parser.add_argument("--no-accuracy", action="store_true", help="skip the photo accuracy")
    args = parser.parse_args()
    if reason := missing_reason():
        print(f"{reason}: fetch them with scripts/fetch-face-photos.sh", file=sys.stderr)
        return 2
    width, height = parse_size(args.size)
    engine = FaceEngine()
    loads = [os.getloadavg()[0]]
    on: list[Run] = []
    off: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="edge-faces-bench-") as tmp, \
            bench_hub(Path(tmp)) as port:
        work = Path(tmp)
        scene = make_scene(work, engine, width, height, args.fps)
        catalog = catalog_db.make_engine(f"sqlite:///{work / 'nvr.db'}")
        try:
            enroll(catalog, engine)
            for _ in range(args.rounds):  # alternating, so a burst of load hits both sides
                on.append(measure(port, work, scene, True, args, catalog))
                off.append(measure(port, work, scene, False, args, catalog))
        finally:
            catalog.dispose()
    loads.append(os.getloadavg()[0])
    report(args, on, off, (loads[0], loads[1]))
    if not args.no_accuracy:
        counts, lines = accuracy(engine)
        print(f"accuracy on the photos ({', '.join(PHOTOS)}), each against the others:")
        for (size, threshold), found in counts.items():
            print(f"  {size:3} px, threshold {threshold}: "
                  + ", ".join(f"{k} {v}" for k, v in found.items()))
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
