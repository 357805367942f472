#!/usr/bin/env python3
"""Timeline benchmark: one day of 16 cameras over a catalog of 1,000,000 segments.

It fills a temp SQLite catalog exactly as scripts/bench/catalog_queries.py does (its `fill`:
--segments of --seconds each over --cameras cameras, back to back), adds --motion motion events
per camera per day, then, inside an app context of a real `webapp.create_app`, times --runs
rounds of each case, each on a random whole day:

  timeline, 16 cameras, 1 day   webapp.timeline.queries.timelines(every camera, day, 120 s buckets)
  HTTP GET /api/v1/timeline     the same through the Flask test client (Bearer token), JSON included
  timeline, 1 camera, 1 day     for information

Target (issue 11): p95 of the 16-camera day under 100 ms. Exit status 1 if it is missed.
--db FILE reuses (or first fills) a catalog file; --keep keeps the temp folder.

Usage: .venv/bin/python scripts/bench/timeline.py [--segments N] [--runs N] [--db FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
for folder in (str(REPO), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import catalog_queries as catalog_bench  # noqa: E402  (scripts/bench/catalog_queries.py)
from sqlalchemy import func, insert, select  # noqa: E402

from nvrlib.catalog.db import make_engine  # noqa: E402
from nvrlib.catalog.models import Camera, MotionEvent  # noqa: E402

UTC = dt.timezone.utc
TARGET_MS = 100.0
RESOLUTION = 120  # seconds per motion bucket: 720 buckets a day


def add_motion(url: str, layout: catalog_bench.Layout, per_day: int) -> None:
    """Add ``per_day`` motion events (5-60 s long) per camera and day, unless some exist."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(MotionEvent)).scalar_one():
                return
            rng = random.Random(7)
            rows = []
            for camera_id in conn.execute(select(Camera.id)).scalars():
                for index in range(per_day * layout.days):
                    start = catalog_bench.BASE + dt.timedelta(
                        seconds=rng.uniform(0, layout.days * 86400))
                    rows.append({"camera_id": camera_id, "event_key": f"b{camera_id}-{index}",
                                 "start_time": start,
                                 "end_time": start + dt.timedelta(seconds=rng.uniform(5, 60)),
                                 "score": rng.random(), "box_x": 0.0, "box_y": 0.0,
                                 "box_w": 0.1, "box_h": 0.1, "source": "edge",
                                 "created_at": start})
            conn.execute(insert(MotionEvent), rows)
        print(f"added {len(rows):,} motion events")
    finally:
        engine.dispose()


def run_cases(url: str, workdir: Path, layout: catalog_bench.Layout,
              runs: int) -> list[catalog_bench.Result]:
    """Time the timeline through the web app's real code, on the catalog at ``url``."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import User
    from webapp.timeline.queries import timelines

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "STORAGE_ROOT": str(workdir / "storage"),
                      "USERS_DB_URL": f"sqlite:///{workdir / 'users.db'}",
                      "SECRET_KEY": "bench", "TESTING": True})
    names = [catalog_bench.camera_name(index) for index in range(layout.cameras)]

    def pick_day(rng: random.Random) -> tuple[dt.datetime, dt.datetime]:
        start = catalog_bench.BASE + dt.timedelta(days=rng.randrange(layout.days))
        return start, start + dt.timedelta(days=1)

    def all_cameras(rng: random.Random) -> None:
        start, end = pick_day(rng)
        rows = timelines(names, start, end, RESOLUTION, end)
        assert len(rows) == layout.cameras and all(row.footage for row in rows)

    def one_camera(rng: random.Random) -> None:
        start, end = pick_day(rng)
        timelines([rng.choice(names)], start, end, RESOLUTION, end)

    results = []
    with app.app_context():
        results.append(catalog_bench.timed(f"timeline, {layout.cameras} cameras, 1 day", runs,
                                           all_cameras, TARGET_MS))
        results.append(catalog_bench.timed("timeline, 1 camera, 1 day", runs, one_camera))
        user = User(username="bench", password_hash="!", role="viewer")
        db.session.add(user)
        db.session.commit()
        token = user.new_api_token(dt.datetime.now(UTC))
        db.session.commit()
    client = app.test_client()

    def http(rng: random.Random) -> None:
        start, end = pick_day(rng)
        response = client.get(f"/api/v1/timeline?start={start:%Y-%m-%dT%H:%M:%SZ}"
                              f"&end={end:%Y-%m-%dT%H:%M:%SZ}&resolution={RESOLUTION}",
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_data(as_text=True)[:200]

    results.append(catalog_bench.timed("HTTP GET /api/v1/timeline (16 cameras, 1 day)", runs,
                                       http))
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    """Fill the catalog (unless reused), time the cases, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    catalog_bench.add_catalog_arguments(parser)
    parser.add_argument("--motion", type=int, default=100, help="motion events per camera-day")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="nvr-bench-timeline-"))
    try:
        url, layout = catalog_bench.open_catalog(args, workdir)
        add_motion(url, layout, args.motion)
        load_before = os.getloadavg()[0]
        results = run_cases(url, workdir, layout, args.runs)
        catalog_bench.print_results(results, load_before)
        return 0 if all(result.verdict != "MISSED" for result in results) else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
