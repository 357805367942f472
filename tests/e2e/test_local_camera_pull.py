"""The hub refuses to pull a loopback camera unless allow_local_camera_urls is on (issue 9)."""

from __future__ import annotations

import contextlib
import sqlite3

from tests.support.control import add_pulled_camera
from tests.support.procs import wait_for

PROBE = "rtsp://admin:probe-pw@127.0.0.1:22/"  # what an admin probing the hub's ssh would add


def status_of(hub, camera: str) -> tuple[str, str] | None:
    """(state, last_error) of a camera's status row, as the admin page shows them."""
    with contextlib.closing(sqlite3.connect(hub.db_path, timeout=10)) as conn:
        return conn.execute("SELECT s.state, s.last_error FROM camera_status s JOIN cameras c "
                            "ON c.id = s.camera_id WHERE c.name = ?", (camera,)).fetchone()


def test_the_hub_does_not_pull_a_loopback_url_without_the_switch(hub_factory):
    hub = hub_factory(config=f'[[cameras]]\nname = "probe"\nurl = "{PROBE}"\n').start()
    line = hub.process.wait_line(r"probe: not pulled: .*", 30).group(0)
    assert "allow_local_camera_urls = true" in line and "probe-pw" not in line
    # one added in the web app: the admin page says why it is not recorded (not a connection
    # error: nothing connected)
    add_pulled_camera(hub, "probe2", PROBE)
    hub.process.wait_line(r"probe2: not pulled: .*", 30)
    state, error = wait_for(lambda: status_of(hub, "probe2"), 15, "probe2's status row")
    assert state == "failed" and error.startswith("not pulled: ") and "probe-pw" not in error
    assert hub.stop() == 0
    assert "probe: pulling" not in hub.output
