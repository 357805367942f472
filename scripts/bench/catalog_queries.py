#!/usr/bin/env python3
"""Catalog query benchmark: search pages and 24-hour playlists over 1,000,000 segments.

It fills a temp SQLite catalog (made by the recorder's own migrations) with --segments segments
(default 1,000,000) of --seconds (10) each, spread over --cameras (16) cameras, each camera's
segments tiling one after the other in runs of one day. Then, inside an app context of a real
`webapp.create_app` on that catalog, it times --runs (50) rounds of each case, each round on a
random camera and a random whole day:

  search page     catalog_queries.search(camera + 1-day range, sort by time, limit 50)
  24 h playlist   catalog_queries.segment_spans(camera, day) + media.hls_playlist(...)

and, for information (no target), a search of all cameras over a day, a search sorted by size,
the day timeline, the same search and playlist through HTTP (Flask test client, Bearer token),
and unfiltered searches sorted by size and by duration (a sort of the whole catalog: no index
orders those columns).

Targets (issue 3): p95 search < 50 ms, 24-hour playlist < 150 ms (p95). Exit status 1 if one is
missed. --keep keeps the temp folder; --db FILE reuses (or first fills) a catalog file.

Usage: .venv/bin/python scripts/bench/catalog_queries.py [--segments N] [--runs N] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import func, insert, select, text  # noqa: E402

from nvrlib.catalog.db import make_engine, upgrade  # noqa: E402
from nvrlib.catalog.models import Camera, Run, Segment  # noqa: E402

UTC = dt.timezone.utc
BASE = dt.datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 20_000
SEARCH_TARGET_MS = 50.0
PLAYLIST_TARGET_MS = 150.0


@dataclass(frozen=True)
class Layout:
    """How the benchmark catalog is laid out."""

    segments: int
    cameras: int
    seconds: float

    @property
    def per_camera(self) -> int:
        """Segments per camera."""
        return self.segments // self.cameras

    @property
    def days(self) -> int:
        """Whole days every camera covers."""
        return max(1, int(self.per_camera * self.seconds // 86400))


def camera_name(index: int) -> str:
    """Return the name of camera ``index``."""
    return f"bench-{index:02d}"


def segment_rows(layout: Layout, camera_id: int, name: str) -> Iterator[dict]:
    """Yield the segment rows of one camera: back to back, one run per day."""
    rng = random.Random(camera_id)
    step = dt.timedelta(seconds=layout.seconds)
    for seq in range(layout.per_camera):
        start = BASE + step * seq
        yield {
            "camera_id": camera_id, "run_id": f"{camera_id:04d}{(start - BASE).days:08d}",
            "seq": seq, "location": f"site {camera_id % 4}", "start_time": start,
            "end_time": start + step, "duration": layout.seconds,
            "size_bytes": 2_000_000 + rng.randrange(800_000),
            "path": f"{name}/{start:%Y-%m-%d}/{name}-{start:%Y%m%dT%H%M%S}-{seq:07d}.ts",
            "codec": "h264", "width": 1280, "height": 720, "status": "ok", "recovered": False,
            "created_at": start + step,
        }


def fill(url: str, layout: Layout) -> float:
    """Migrate a new catalog at ``url``, insert cameras, runs and segments; return the seconds."""
    began = time.perf_counter()
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        conn.execute(text("PRAGMA synchronous=OFF"))  # a benchmark catalog needs no durability
        for index in range(layout.cameras):
            name = camera_name(index)
            camera_id = conn.execute(insert(Camera).values(
                name=name, location=f"site {(index + 1) % 4}", kind="push", enabled=True,
                first_seen=BASE).returning(Camera.id)).scalar_one()
            conn.execute(insert(Run), [
                {"id": f"{camera_id:04d}{day:08d}", "camera_id": camera_id,
                 "started_at": BASE + dt.timedelta(days=day), "anchor_wall": BASE,
                 "peer": "", "location": ""} for day in range(layout.days + 2)])
            batch: list[dict] = []
            for row in segment_rows(layout, camera_id, name):
                batch.append(row)
                if len(batch) == BATCH:
                    conn.execute(insert(Segment), batch)
                    batch = []
            if batch:
                conn.execute(insert(Segment), batch)
            conn.commit()
            print(f"  camera {index + 1}/{layout.cameras} filled "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
    engine.dispose()
    return time.perf_counter() - began


def count_segments(url: str) -> int:
    """Return how many segments the catalog at ``url`` holds (0 if it has no schema yet)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Segment)).scalar_one()
    except Exception:  # noqa: BLE001 - no table yet: not filled
        return 0
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Result:
    """Timings of one case, in milliseconds."""

    name: str
    times: list[float]
    target: float | None = None

    @property
    def median(self) -> float:
        """Median time."""
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        """95th percentile (nearest rank)."""
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def verdict(self) -> str:
        """'ok', 'MISSED' or '' when there is no target."""
        if self.target is None:
            return ""
        return "ok" if self.p95 < self.target else "MISSED"


def timed(name: str, runs: int, case: Callable[[random.Random], object],
          target: float | None = None, seed: int = 1) -> Result:
    """Run ``case`` ``runs`` times (after 3 warm-up calls) and return its timings."""
    rng = random.Random(seed)
    for _ in range(3):
        case(rng)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        case(rng)
        times.append((time.perf_counter() - began) * 1000)
    return Result(name, times, target)


def run_cases(url: str, workdir: Path, layout: Layout, runs: int) -> list[Result]:
    """Time every case through the web app's real code, on the catalog at ``url``."""
    from webapp import create_app, media
    from webapp.catalog_queries import SearchFilters, day_timeline, search, segment_spans
    from webapp.extensions import db
    from webapp.models import User

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "STORAGE_ROOT": str(workdir / "storage"),
                      "USERS_DB_URL": f"sqlite:///{workdir / 'users.db'}",
                      "SECRET_KEY": "bench", "TESTING": True})

    def pick_day(rng: random.Random) -> tuple[str, dt.datetime, dt.datetime]:
        start = BASE + dt.timedelta(days=rng.randrange(layout.days))
        return camera_name(rng.randrange(layout.cameras)), start, start + dt.timedelta(days=1)

    def search_page(rng: random.Random) -> None:
        camera, start, end = pick_day(rng)
        page = search(SearchFilters(camera=camera, start=start, end=end), "time", "desc", 50)
        assert len(page.rows) == 50 and page.has_next

    def playlist(rng: random.Random) -> None:
        camera, start, end = pick_day(rng)
        spans = segment_spans(camera, start, end)
        body = media.hls_playlist(spans, lambda segment_id: f"../recordings/{segment_id}/file")
        assert body.endswith("#EXT-X-ENDLIST\n") and len(spans) >= 86400 / layout.seconds

    def search_all_cameras(rng: random.Random) -> None:
        _, start, end = pick_day(rng)
        search(SearchFilters(start=start, end=end), "time", "desc", 50)

    def search_by_size(rng: random.Random) -> None:
        camera, start, end = pick_day(rng)
        search(SearchFilters(camera=camera, start=start, end=end), "size", "desc", 50)

    def whole_catalog_by(sort: str) -> Callable[[random.Random], None]:
        def case(_rng: random.Random) -> None:
            search(SearchFilters(), sort, "desc", 50)
        return case

    def timeline(rng: random.Random) -> None:
        camera, start, _ = pick_day(rng)
        day_timeline(camera, start.date(), UTC)

    results = []
    with app.app_context():
        results.append(timed("search page (camera, 1 day, by time, 50)", runs, search_page,
                             SEARCH_TARGET_MS))
        results.append(timed("24 h playlist (query + m3u8)", runs, playlist, PLAYLIST_TARGET_MS))
        results.append(timed("search page, all cameras, 1 day", runs, search_all_cameras))
        results.append(timed("search page, camera, 1 day, by size", runs, search_by_size))
        results.append(timed("day timeline (query + merge)", runs, timeline))
        # No filter at all, sorted by a column no index orders: a sort of the whole catalog.
        slow_runs = max(3, runs // 10)
        results.append(timed("search page, no filter, by size", slow_runs,
                             whole_catalog_by("size")))
        results.append(timed("search page, no filter, by duration", slow_runs,
                             whole_catalog_by("duration")))
        user = User(username="bench", password_hash="!", role="viewer")
        db.session.add(user)
        db.session.commit()
        token = user.new_api_token(dt.datetime.now(UTC))
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def http_get(url_of: Callable[[str, dt.datetime, dt.datetime], str]) -> Callable:
        def case(rng: random.Random) -> None:
            response = client.get(url_of(*pick_day(rng)), headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)[:200]
        return case

    def iso(value: dt.datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")

    results.append(timed("HTTP GET /api/v1/recordings (same search)", runs, http_get(
        lambda c, s, e: f"/api/v1/recordings?camera={c}&start={iso(s)}&end={iso(e)}&limit=50")))
    results.append(timed("HTTP GET 24 h playlist .m3u8", runs, http_get(
        lambda c, s, e: f"/api/v1/playback/{c}.m3u8?start={iso(s)}&end={iso(e)}")))
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()
    return results


def print_results(results: list[Result], load_before: float) -> None:
    """Print the table of figures, and how busy the machine was."""
    print(f"\n{'case':<46} {'runs':>4} {'median ms':>10} {'p95 ms':>9} {'target p95':>11}  verdict")
    for result in results:
        target = f"< {result.target:.0f} ms" if result.target is not None else "-"
        print(f"{result.name:<46} {len(result.times):>4} {result.median:>10.2f} {result.p95:>9.2f} "
              f"{target:>11}  {result.verdict}")
    print(f"(after 3 warm-up calls each; a random camera and day per run; {os.cpu_count()} CPUs, "
          f"load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after)")


def add_catalog_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that lay out (or name) the benchmark catalog, shared with timeline.py."""
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--cameras", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each segment")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--db", type=Path, help="catalog file to reuse (filled if empty)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")


def open_catalog(args: argparse.Namespace, workdir: Path) -> tuple[str, Layout]:
    """Return the URL and layout of the catalog: ``--db`` if it is filled, else a new one."""
    layout = Layout(args.segments, args.cameras, args.seconds)
    db_file = (args.db or workdir / "nvr.db").resolve()
    url = f"sqlite:///{db_file}"
    existing = count_segments(url) if db_file.exists() else 0
    if existing:
        print(f"reusing {db_file} ({existing:,} segments)")
    else:
        print(f"filling {db_file}: {layout.segments:,} segments of {layout.seconds:g} s, "
              f"{layout.cameras} cameras, {layout.days} days each")
        seconds = fill(url, layout)
        print(f"filled in {seconds:.1f} s ({db_file.stat().st_size / 1e6:.0f} MB)")
    return url, layout


def main(argv: list[str] | None = None) -> int:
    """Fill the catalog (unless reused), time the cases, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_catalog_arguments(parser)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="nvr-bench-catalog-"))
    try:
        url, layout = open_catalog(args, workdir)
        load_before = os.getloadavg()[0]
        results = run_cases(url, workdir, layout, args.runs)
        print_results(results, load_before)
        return 0 if all(result.verdict != "MISSED" for result in results) else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
