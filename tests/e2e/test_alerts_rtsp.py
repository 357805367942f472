"""A pulled RTSP camera that drops off the network is emailed as offline, then as back online."""

from __future__ import annotations

import json

from tests.e2e.test_alerts_e2e import assert_addressed, body_of, of_kind, outages, sendgrid, start_hub  # noqa: F401
from tests.support.media import segments
from tests.support.procs import wait_for
from tests.support.requirements import require
from tests.support.rtsp import rtsp_server, unavailable_reason

require(unavailable_reason(), module_level=True)

PASSWORD = "gate-secret-1234"


def test_pulled_camera_going_dark_and_coming_back_is_emailed(hub_factory, sendgrid):  # noqa: F811
    with rtsp_server(user="admin", password=PASSWORD) as camera:
        hub = start_hub(hub_factory, sendgrid, config=f"""
backoff_initial = 0.5
allow_local_camera_urls = true  # the RTSP server is on 127.0.0.1
backoff_max = 2
[[cameras]]
name = "gate"
location = "front gate"
url = "{camera.url}"
""")
        wait_for(lambda: len(segments(hub.db_path, "gate")) >= 2, 40, "pulled segments")
        camera.kill()  # the camera drops off the network
        offline = sendgrid.wait_for(of_kind("offline", "gate"), 40).json
        assert_addressed(offline)
        assert "gate" in offline["subject"] and "offline" in offline["subject"].lower()
        camera.start()
        online = sendgrid.wait_for(of_kind("online", "gate"), 60).json
        assert "back online" in online["subject"].lower()
        assert "front gate" in body_of(online) or "gate" in body_of(online)
        assert hub.stop() == 0, hub.output[-3000:]
    (reason, started, ended), stop = outages(hub, "gate")
    assert reason == "connection_lost" and ended is not None and ended > started
    assert stop[0] == "hub_stopped" and stop[2] is None  # closed when the hub pulls it again
    mails = json.dumps([m.json for m in sendgrid.requests])
    assert PASSWORD not in mails  # the camera's credentials never reach an email
