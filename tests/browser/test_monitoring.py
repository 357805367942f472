"""Health and metrics of the real running system: the hub's heartbeat read by the web app."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import wait_for

from .support import APIRequestContext
from .system import CAMERA, System


def _health(request: APIRequestContext) -> dict:
    response = request.get("/api/v1/health")
    assert response.status in (200, 503), response.text()[:300]
    return response.json()


def test_health_and_metrics_see_the_running_hub_and_camera(open_page, system: System) -> None:
    anonymous = open_page().request  # a load balancer: no login
    wait_for(lambda: _health(anonymous)["hub"]["running"], 20,
             "the hub's heartbeat to reach /api/v1/health", interval=0.5)
    health = _health(anonymous)
    assert health["database"] == "ok" and health["status"] in ("ok", "degraded")
    assert health["cameras"]["online"] >= 1 and health["disk"]["total_bytes"] > 0
    assert CAMERA not in str(health) and str(system.hub.storage) not in str(health)

    assert anonymous.get("/metrics").status == 401
    viewer = open_page(user="viewer").request

    def metrics() -> dict:
        response = viewer.get("/metrics")
        assert response.status == 200, response.text()[:300]
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.text())
                for s in family.samples}

    camera = (("camera", CAMERA),)
    # ffmpeg reports its frame count through -progress a little after the stream starts.
    wait_for(lambda: metrics()[("nvr_camera_frames_total", camera)] > 0, 20,
             f"a frame count of {CAMERA} in /metrics", interval=0.5)
    values = metrics()
    assert values[("nvr_hub_up", (("hub", "main"),))] == 1
    assert values[("nvr_camera_up", camera)] == 1
    assert values[("nvr_camera_state", (*camera, ("state", "running")))] == 1
    assert values[("nvr_camera_footage_bytes", camera)] > 0
    assert values[("nvr_disk_total_bytes", (("hub", "main"),))] > 0
