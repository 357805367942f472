"""The Prometheus metrics of ``/metrics``: a collector that reads the catalog at each scrape.

Every request builds a fresh ``CollectorRegistry`` holding one `CatalogCollector`, so nothing
is kept between scrapes and the numbers are exactly what the hub last wrote to the catalog.
prometheus_client writes the exposition format. Per-camera series carry the label ``camera``;
the hubs' series (heartbeat, disk, footage, retention, checks) the label ``hub``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .status import (
    CAMERA_STATES, CameraView, HubView, alert_counts, footage_by_camera, read_cameras, read_hubs,
)


def _per_camera(cameras: list[CameraView]) -> Iterator[Metric]:
    """The series of each camera's live status (from its camera_status row)."""
    gauges = {
        "nvr_camera_up": ("1 if the camera is streaming to the hub now, else 0",
                          lambda c: 1.0 if c.online else 0.0),
        "nvr_camera_fps": ("Frames per second arriving, over the hub's last few seconds",
                           lambda c: c.fps),
        "nvr_camera_bitrate_bits_per_second": ("Bits per second arriving, over the hub's last "
                                               "few seconds", lambda c: c.bitrate_bps),
        "nvr_camera_offline": ("1 if the camera should record (enabled, approved or pending) "
                               "but is not streaming to the hub", lambda c: c.offline),
        "nvr_camera_alerts_muted": ("1 while an admin has muted the camera's alert emails",
                                    lambda c: 1.0 if c.alerts_muted else 0.0),
    }
    counters = {
        "nvr_camera_received_bytes_total": ("Bytes of stream received by the hub (resets "
                                            "when the hub restarts)", lambda c: c.bytes_in),
        "nvr_camera_written_bytes_total": ("Bytes of segments written to disk (resets when "
                                           "the hub restarts)", lambda c: c.bytes_written),
        "nvr_camera_frames_total": ("Frames received (resets when the hub restarts)",
                                    lambda c: c.frames),
        "nvr_camera_restarts_total": ("Restarts of the camera's ffmpeg", lambda c: c.restarts),
    }
    for name, (doc, value) in gauges.items():
        family = GaugeMetricFamily(name, doc, labels=["camera"])
        for camera in cameras:
            family.add_metric([camera.name], float(value(camera)))
        yield family
    for name, (doc, value) in counters.items():
        counter = CounterMetricFamily(name, doc, labels=["camera"])
        for camera in cameras:
            counter.add_metric([camera.name], float(value(camera)))
        yield counter


def _camera_details(cameras: list[CameraView], current: dt.datetime) -> Iterator[Metric]:
    """Segment age, the state set and the footage of each camera."""
    age = GaugeMetricFamily("nvr_camera_last_segment_age_seconds",
                            "Seconds since the end of the camera's newest finished segment "
                            "(absent before its first)", labels=["camera"])
    for camera in cameras:
        if camera.last_segment_end is not None:
            age.add_metric([camera.name],
                           (current - camera.last_segment_end).total_seconds())
    yield age
    state = GaugeMetricFamily("nvr_camera_state", "1 for the state the camera's stream is in "
                              "(unknown: the hub stopped reporting), 0 for the others",
                              labels=["camera", "state"])
    for camera in cameras:
        for name in CAMERA_STATES:
            state.add_metric([camera.name, name], 1.0 if camera.state == name else 0.0)
    yield state
    footage = footage_by_camera()
    size = GaugeMetricFamily("nvr_camera_footage_bytes", "Bytes of the camera's recordings on "
                             "disk, per the catalog", labels=["camera"])
    for camera in cameras:
        size.add_metric([camera.name], float(footage.get(camera.name, 0)))
    yield size


def _not_recording(cameras: list[CameraView], hubs: list[HubView]) -> Iterator[Metric]:
    """1 for each camera a running hub says receives but records nothing (health.md)."""
    names = {name for hub in hubs if hub.running for name in hub.not_recording}
    family = GaugeMetricFamily("nvr_camera_not_recording", "1 while the camera's edge sends but "
                               "the hub writes no segment of it, else 0", labels=["camera"])
    for camera in cameras:
        family.add_metric([camera.name], 1.0 if camera.name in names else 0.0)
    yield family


def _hubs(hubs: list[HubView]) -> Iterator[Metric]:
    """Each hub's heartbeat, disk, retention and health-check series (label ``hub``)."""
    up = GaugeMetricFamily("nvr_hub_up", "1 if the hub's heartbeat is at most 30 s old",
                           labels=["hub"])
    age = GaugeMetricFamily("nvr_hub_heartbeat_age_seconds",
                            "Seconds since the hub's last heartbeat (absent if it never beat)",
                            labels=["hub"])
    for hub in hubs:
        up.add_metric([hub.hub_id], 1.0 if hub.running else 0.0)
        if hub.heartbeat_age is not None:
            age.add_metric([hub.hub_id], hub.heartbeat_age)
    yield up
    yield age
    for family, name, doc, value in (
            (GaugeMetricFamily, "nvr_disk_total_bytes", "Size of the hub's storage filesystem",
             lambda hub: hub.disk_total),
            (GaugeMetricFamily, "nvr_disk_free_bytes", "Free bytes on the hub's storage "
             "filesystem", lambda hub: hub.disk_free),
            (GaugeMetricFamily, "nvr_footage_bytes", "Bytes of the hub's recordings, as it last "
             "measured", lambda hub: hub.footage_bytes),
            (CounterMetricFamily, "nvr_retention_deleted_segments", "Segments the hub's "
             "retention deleted", lambda hub: hub.retention_deleted_segments),
            (CounterMetricFamily, "nvr_retention_deleted_bytes", "Bytes the hub's retention "
             "deleted", lambda hub: hub.retention_deleted_bytes)):
        series = family(name, doc, labels=["hub"])
        for hub in hubs:
            series.add_metric([hub.hub_id], float(value(hub)))
        yield series
    checks = GaugeMetricFamily("nvr_check_ok", "1 if the hub's health check passed last time",
                               labels=["hub", "check"])
    for hub in hubs:
        for name, ok in sorted(hub.checks.items()):
            checks.add_metric([hub.hub_id, name], 1.0 if ok else 0.0)
    yield checks


def _alerts() -> Iterator[Metric]:
    alerts = GaugeMetricFamily("nvr_alerts", "Alerts stored, by delivery status",
                               labels=["status"])
    for status, count in alert_counts().items():
        alerts.add_metric([status], float(count))
    yield alerts


class CatalogCollector(Collector):
    """Reads the catalog when collected: per-camera, hub, disk, retention and alert series."""

    def __init__(self, current: dt.datetime) -> None:
        self.current = current

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, read from the catalog now."""
        cameras = read_cameras(self.current)
        hubs = read_hubs(self.current)
        yield from _per_camera(cameras)
        yield from _camera_details(cameras, self.current)
        yield from _not_recording(cameras, hubs)
        yield from _hubs(hubs)
        yield from _alerts()


def registry_for(current: dt.datetime) -> CollectorRegistry:
    """Return a fresh registry holding only the catalog collector (one per request)."""
    # auto_describe off: registering would otherwise run collect() once just to learn names.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(current))
    return registry
