"""A pulled camera's host is resolved once per ffmpeg run, checked, and given to ffmpeg as that
address (nvrlib.camera_urls.pinned_url): a name whose DNS answer changes after the check
(DNS rebinding) cannot lead ffmpeg to 127.0.0.1.

The changing DNS answers come from a resolver hook (as a DNS server with a TTL of 0 would give
them); the recording half runs real ffmpeg against a real RTSP test camera.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import select

from nvrlib.camera_urls import LocalCameraURL, UnresolvedCameraHost, pinned_url
from nvrlib.catalog import db
from nvrlib.catalog.models import Segment
from recorder.store.catalog import Catalog
from recorder.store.storage import Storage
from recorder.supervise.segmenter import Segmenter
from recorder.supervise.states import RestartPolicy, State
from tests.support import aio
from tests.support.requirements import require
from tests.support.rtsp import rtsp_server, unavailable_reason

PUBLIC = ipaddress.ip_address("192.0.2.10")
LOOPBACK = ipaddress.ip_address("127.0.0.1")
POLICY = RestartPolicy(initial=0.2, maximum=0.5, fail_after=5, startsecs=0.2, failed_retry=60)


class Rebinding:
    """A DNS answer that changes at each question (the attacker's server, TTL 0)."""

    def __init__(self, *answers: list) -> None:
        self.answers = list(answers)
        self.asked = 0

    def __call__(self, host: str) -> list:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer


def test_ffmpeg_gets_the_checked_address_not_the_name() -> None:
    dns = Rebinding([PUBLIC], [LOOPBACK])
    assert pinned_url("rtsp://cam.example/live", False, resolver=dns) == "rtsp://192.0.2.10/live"
    # the next run asks again, and the rebound answer is refused before ffmpeg starts
    with pytest.raises(LocalCameraURL, match="127.0.0.1"):
        pinned_url("rtsp://cam.example/live", False, resolver=dns)


def test_one_local_address_among_several_refuses_the_name() -> None:
    with pytest.raises(LocalCameraURL):
        pinned_url("rtsp://cam.example/", False, resolver=lambda host: [PUBLIC, LOOPBACK])
    assert pinned_url("rtsp://cam.example/", True,
                      resolver=lambda host: [PUBLIC, LOOPBACK]) == "rtsp://192.0.2.10/"


def test_a_name_that_resolves_to_nothing_is_not_pulled() -> None:
    with pytest.raises(UnresolvedCameraHost, match="cam.invalid"):
        pinned_url("rtsp://user:secret@cam.invalid/", False)


def test_credentials_port_path_and_query_stay_and_ipv6_gets_brackets() -> None:
    six = ipaddress.ip_address("2001:db8::7")
    url = "rtsp://admin:p%40ss:w@cam.example:8554/Streaming/101?channel=1&pw=x#f"
    assert pinned_url(url, False, resolver=lambda host: [six]) == \
        "rtsp://admin:p%40ss:w@[2001:db8::7]:8554/Streaming/101?channel=1&pw=x#f"


def test_the_runs_after_a_failed_one_try_the_next_address() -> None:
    other = ipaddress.ip_address("198.51.100.4")
    dns = lambda host: [PUBLIC, other, PUBLIC]  # noqa: E731  (repeats are dropped)
    urls = [pinned_url("rtsp://cam.example/", False, attempt, resolver=dns) for attempt in range(3)]
    assert urls == ["rtsp://192.0.2.10/", "rtsp://198.51.100.4/", "rtsp://192.0.2.10/"]


def test_rtsps_keeps_its_name_for_the_certificate_and_addresses_stay() -> None:
    dns = Rebinding([PUBLIC])
    assert pinned_url("rtsps://cam.example/x", False, resolver=dns) == "rtsps://cam.example/x"
    assert dns.asked == 1  # still checked
    assert pinned_url("rtsp://192.0.2.10:554/", False) == "rtsp://192.0.2.10:554/"
    assert pinned_url("rtsp://[2001:db8::7]/", False) == "rtsp://[2001:db8::7]/"


@given(user=st.text("abcXYZ09%-._~!$&'()*+,;=", max_size=12),
       password=st.text("abcXYZ09%-._~!$&'()*+,;=:", max_size=12),
       port=st.one_of(st.none(), st.integers(1, 65535)),
       path=st.text("abc/09-._~%?=&", max_size=20))
def test_only_the_host_changes(user: str, password: str, port: int | None, path: str) -> None:
    userinfo = f"{user}:{password}@" if user else ""
    hostport = "cam.example" + (f":{port}" if port is not None else "")
    url = f"rtsp://{userinfo}{hostport}/{path}"
    pinned = pinned_url(url, False, resolver=lambda host: [PUBLIC])
    assert pinned == url.replace("cam.example", "192.0.2.10", 1)


# -- a real pull ---------------------------------------------------------------------------------

async def _until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def test_a_pull_refused_at_a_run_start_records_once_its_host_is_fine_again(tmp_path: Path) -> None:
    require(unavailable_reason())
    engine = db.make_engine(f"sqlite:///{tmp_path / 'nvr.db'}")
    db.upgrade(engine)
    catalog = Catalog(engine, Storage(tmp_path / "rec"))
    refusing = [True]
    asked: list[int] = []

    def pin(url: str, attempt: int) -> str:  # the hub's own check, with a rebinding answer
        asked.append(attempt)
        answer = [LOOPBACK] if not refusing[0] else [PUBLIC, LOOPBACK]
        return pinned_url(url, allow_local=not refusing[0], attempt=attempt,
                          resolver=lambda host: answer)

    with rtsp_server(user="admin", password="pa:ss") as camera:
        url = camera.url.replace("127.0.0.1", "cam.example")  # a name, as a user gives it
        async def scenario() -> None:
            with concurrent.futures.ThreadPoolExecutor(1) as executor:
                seg = Segmenter(camera="gate", location="", kind="pull",
                                incoming_dir=catalog.storage.incoming_dir("gate"),
                                segment_seconds=2, policy=POLICY, catalog=catalog,
                                catalog_executor=executor, url=url, pin_url=pin)
                seg.start()
                await _until(lambda: len(asked) >= 2, 10)
                assert seg.pid is None  # no ffmpeg was started for a refused host
                assert "cannot pull: the camera's host is a loopback" in "\n".join(
                    seg.stderr.tail())
                assert asked[:2] == [0, 1]  # each idle run tries the next address
                refusing[0] = False
                await seg.restart()
                await _until(lambda: seg.stats.segments >= 2, 40)
                assert seg.state is State.RUNNING
                await seg.stop()

        aio.run(scenario())
    with catalog.session() as session:
        assert len(session.scalars(select(Segment.id)).all()) >= 2
    engine.dispose()
