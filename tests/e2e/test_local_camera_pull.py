"""The hub refuses to pull a loopback camera unless allow_local_camera_urls is on (issue 9)."""

from __future__ import annotations

PROBE = "rtsp://admin:probe-pw@127.0.0.1:22/"  # what an admin probing the hub's ssh would add


def test_the_hub_does_not_pull_a_loopback_url_without_the_switch(hub_factory):
    hub = hub_factory(config=f'[[cameras]]\nname = "probe"\nurl = "{PROBE}"\n').start()
    line = hub.process.wait_line(r"probe: not pulled: .*", 30).group(0)
    assert "allow_local_camera_urls = true" in line and "probe-pw" not in line
    assert hub.stop() == 0
    assert "probe: pulling" not in hub.output
