"""The audit, repeated: camera secrets planted in pull URLs show nowhere but the cameras table.

A real hub pulls a real RTSP camera whose URL carries a password in its userinfo and in
``?password=``, and fails on a second camera (a closed port, a token in its URL). While the
camera records, every readable /proc/*/cmdline is searched; then every GET route of the real
web app (as admin and as viewer), the catalog (runs.peer, alerts, last_error, outages) and
the hub's and web app's logs.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import re
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.browser.system import ADMIN, VIEWER, create_user, start_web
from tests.support.control import add_pulled_camera
from tests.support.media import segments
from tests.support.procs import Hub, free_port, wait_for
from tests.support.requirements import require
from tests.support.rtsp import rtsp_server, unavailable_reason
from webapp import create_app

require(unavailable_reason(), module_level=True)
pytestmark = pytest.mark.e2e

PASSWORD = "Pw1-planted-7781"  # the recording camera's RTSP password (userinfo)
QUERY_SECRET = "Qs-planted-4412"  # ... and its ?password= (the test server ignores the query)
BROKEN_PASSWORD = "Pw2-planted-9931"  # the failing camera's
BROKEN_TOKEN = "Tk-planted-5520"
SECRETS = (PASSWORD, QUERY_SECRET, BROKEN_PASSWORD, BROKEN_TOKEN)
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def leaks(text: str) -> list[str]:
    """The planted secrets found in ``text``."""
    return [secret for secret in SECRETS if secret in text]


def cmdlines_leaking(camera_pid: int | None) -> list[str]:
    """Every readable /proc/*/cmdline that holds a planted secret (but the test camera's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name == str(camera_pid):
            continue  # the RTSP test server is given its password on its command line
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            if entry.name.isdigit() and leaks(argv):
                found.append(f"{entry.name}: {argv}")
    return found


STREAM_PEEK_SECONDS = 2.0


class Browser:
    """A logged-in user of the real web app (cookies and the CSRF token, with urllib)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        token = CSRF_META.search(self.get("/auth/login")[1]).group(1)
        form = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrf_token": token}).encode()
        self.get("/auth/login", data=form)
        assert self.get("/api/v1/cameras")[0] == 200, f"{username} could not log in"

    def get(self, path: str, data: bytes | None = None) -> tuple[int, str]:
        """GET (or POST ``data``) and return the status and the body, whatever the status.

        A live stream (``live.mp4``, the wall) never ends by itself: only what comes within a
        few seconds is read, then the connection is closed, as a viewer leaving would.
        """
        streaming = path.endswith("/live.mp4") or path.startswith("/live/_wall")
        try:
            with self.opener.open(self.base_url + path, data=data,
                                  timeout=STREAM_PEEK_SECONDS if streaming else 30) as response:
                if not streaming:
                    return response.status, response.read().decode("utf-8", "replace")
                try:
                    return response.status, response.read1(65536).decode("utf-8", "replace")
                except TimeoutError:  # nothing yet (the camera is not live): fine
                    return response.status, ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (TimeoutError, urllib.error.URLError) as exc:
            # a stream whose first bytes (and head) wait for the hub's live view: nothing to leak
            if streaming and isinstance(getattr(exc, "reason", exc), TimeoutError):
                return 0, ""
            raise


def get_routes(hub: Hub, tmp_path: Path) -> list[str]:
    """Every GET path of the web app, filled with these cameras, a segment and ids; each
    list page also with ?camera=."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": hub.db_url, "STORAGE_ROOT": str(hub.storage),
                      "USERS_DB_URL": f"sqlite:///{tmp_path / 'routes-users.db'}",
                      "SECRET_KEY": "routes", "MIGRATE_ON_START": False})
    segment_id = segments(hub.db_path, "gate")[0].id
    values = {"camera": ["gate", "broken"], "segment_id": [segment_id], "command_id": [1],
              "lock_id": [1], "user_id": [1], "segment": ["live.m3u8"], "event_id": [1]}
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint.endswith("static"):
            continue
        combos = [{}]
        for argument in rule.arguments:
            # an id no route above knows yet: 1 (a new route still gets crawled)
            combos = [{**c, argument: v} for c in combos for v in values.get(argument, [1])]
        for combo in combos:
            path = rule.rule
            for key, value in combo.items():
                path = re.sub(rf"<(?:\w+:)?{key}>", str(value), path)
            paths.append(path)
            if not rule.arguments:
                paths += [f"{path}?camera=gate", f"{path}?camera=broken"]
    return paths


def catalog_text(hub: Hub) -> str:
    """Every row of the catalog but the cameras table (where the real URL has to be)."""
    with contextlib.closing(sqlite3.connect(hub.db_path, timeout=10)) as conn:
        return "\n".join(line for line in conn.iterdump()
                         if not line.startswith('INSERT INTO "cameras"'))


def catalog_rows(hub: Hub, query: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(hub.db_path, timeout=10)) as conn:
        return conn.execute(query).fetchall()


def test_planted_camera_secrets_show_nowhere(tmp_path: Path) -> None:
    hub = Hub(tmp_path, segment_seconds=2, config=f"""
backoff_initial = 0.5
backoff_max = 1
allow_local_camera_urls = true  # the test camera is on loopback
[[cameras]]
name = "broken"
url = "rtsp://admin:{BROKEN_PASSWORD}@127.0.0.1:{free_port()}/x?token={BROKEN_TOKEN}"
""")
    users_db = f"sqlite:///{tmp_path / 'users.db'}"
    web = None
    with rtsp_server(user="admin", password=PASSWORD) as camera:
        try:
            hub.start()
            add_pulled_camera(hub, "gate", f"{camera.url}?user=admin&password={QUERY_SECRET}")
            create_user(hub, users_db, *ADMIN, admin=True)
            create_user(hub, users_db, *VIEWER, admin=False)
            web, base_url = start_web(hub, users_db)
            wait_for(lambda: len(segments(hub.db_path, "gate")) >= 2, 60, "gate's segments")
            web.wait_line(r"web app listening on", 30)
            # while gate records: its ffmpeg runs, and no command line anywhere holds a secret
            assert hub.ffmpeg_children(), "gate's ffmpeg is not running"
            assert cmdlines_leaking(camera.pid) == []
            wait_for(lambda: catalog_rows(
                hub, "SELECT id FROM alerts WHERE camera = 'broken' AND kind = 'failing'"),
                60, "the failing alert of the broken camera")
            wait_for(lambda: catalog_rows(
                hub, "SELECT last_error FROM camera_status s JOIN cameras c ON c.id = s.camera_id"
                     " WHERE c.name = 'broken' AND last_error != ''"), 30, "broken's last_error")
            assert cmdlines_leaking(camera.pid) == []

            crawled = 0
            for username, password in (ADMIN, VIEWER):
                browser = Browser(base_url, username, password)
                for path in get_routes(hub, tmp_path):
                    status, body = browser.get(path)
                    assert status < 500, (username, path, status, body[-500:])
                    assert leaks(body) == [], (username, path)
                    crawled += 1
                # what was checked held the error text: the events name the failing camera
                assert "broken" in browser.get("/api/v1/events")[1]
                assert "broken" in browser.get("/events/")[1]
            admin = Browser(base_url, *ADMIN)
            edit = admin.get("/admin/cameras/gate/edit")[1]
            assert "rtsp://admin:***@127.0.0.1" in edit and "password=***" in edit
            assert crawled > 60
            # someone watches gate live: the hub's live tap pulls the camera too, URL hidden
            wait_for(lambda: "#EXTM3U" in admin.get("/live/gate/live.m3u8")[1], 40,
                     "gate's live playlist")
            assert cmdlines_leaking(camera.pid) == []
        finally:
            if web is not None and web.proc.poll() is None:
                web.terminate(timeout=15)
            if hub.process is not None and hub.process.proc.poll() is None:
                hub.stop()
            for process in (web, *hub.runs):
                if process is not None:
                    process.kill_group()

    assert catalog_rows(hub, "SELECT peer FROM runs r JOIN cameras c ON c.id = r.camera_id"
                             " WHERE c.name = 'gate'")[0][0].startswith("rtsp://***@127.0.0.1")
    assert leaks(catalog_text(hub)) == []
    assert "rtsp://***@127.0.0.1" in hub.output  # the hub did log the URLs, masked
    assert leaks(hub.output) == [] and leaks(web.output) == []
