"""Stream links: a playlist URL with a signed, expiring token opens that playlist and its
segments, for players that send no header or cookie, and nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from webapp import stream_links
from webapp.catalog_queries import iso_utc
from webapp.extensions import db
from webapp.models import User

from .helpers import Account, AuthActions, FakeClock
from .test_playback import entries
from .test_recordings_support import (  # noqa: F401  (fixtures)
    CatalogWriter, SegmentInfo, at, catalog, clips, iso, viewer_client,
)


def make_link(client: FlaskClient, camera: str = "porch", start: float = 0,
              end: float = 6) -> dict[str, str]:
    """POST for a stream link of ``camera`` from T0+start to T0+end; return the JSON answer."""
    response = client.post(f"/api/v1/playback/{camera}/link?start={iso(at(start))}"
                           f"&end={iso(at(end))}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def local(url: str) -> str:
    """The path and query of an absolute URL (what the test client takes)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def footage(catalog: CatalogWriter, clips: list[Path]) -> list[SegmentInfo]:
    """porch's three real 2 s segments from T0, and one of yard."""
    rows = catalog.footage(clips)
    catalog.segment("yard", at(0), source=clips[0])
    return rows


@pytest.fixture
def link(viewer_client: FlaskClient, footage: list[SegmentInfo]) -> str:
    """A stream link of porch's footage, and nothing logged in any more: a player's view."""
    url = local(make_link(viewer_client)["url"])
    viewer_client.delete_cookie("nvr_session")
    return url


def test_a_link_plays_its_playlist_and_segments_without_login(
        app: Flask, viewer_client: FlaskClient, footage: list[SegmentInfo],
        clips: list[Path], clock: FakeClock) -> None:
    answer = make_link(viewer_client)
    assert answer["expires"] == iso_utc(clock() + stream_links.DEFAULT_LIFETIME)
    url = urlsplit(answer["url"])
    assert url.scheme == "http" and url.path == "/api/v1/playback/porch.m3u8"
    query = parse_qs(url.query)
    assert query["start"] == [iso_utc(at(0))] and query["end"] == [iso_utc(at(6))]
    player = app.test_client()  # no cookie, no header
    playlist = player.get(local(answer["url"]))
    assert playlist.status_code == 200, playlist.get_json()
    assert "Set-Cookie" not in playlist.headers  # a link makes no session
    segments = entries(playlist.get_data(as_text=True).splitlines())
    token = query["st"][0]
    assert [s["uri"] for s in segments] == [f"../recordings/{row.id}/segment.ts?st={token}"
                                            for row in footage]
    for segment, clip in zip(segments, clips):
        response = player.get(urljoin(local(answer["url"]), str(segment["uri"])), buffered=True)
        assert response.status_code == 200
        assert response.get_data() == clip.read_bytes()
    old_url = player.get(f"/api/v1/recordings/{footage[0].id}/file?st={token}", buffered=True)
    assert old_url.status_code == 200
    old_url.close()


def test_without_a_link_the_playlist_names_segments_without_a_token(
        viewer_client: FlaskClient, footage: list[SegmentInfo]) -> None:
    response = viewer_client.get(f"/api/v1/playback/porch.m3u8?start={iso(at(0))}")
    uris = [s["uri"] for s in entries(response.get_data(as_text=True).splitlines())]
    assert uris == [f"../recordings/{row.id}/segment.ts" for row in footage]


def _tampered(url: str) -> str:
    return url[:-1] + ("A" if url[-1] != "A" else "B")


def test_a_damaged_link_is_401(viewer_client: FlaskClient, link: str) -> None:
    for damaged in (_tampered(link), link.replace("st=", "st=x"), link.replace("st=", "st=&x=")):
        response = viewer_client.get(damaged)
        assert response.status_code == 401, damaged
        assert response.get_json()["error"] == ("this stream link is damaged or was not made by "
                                                "this server: make a new one on the player page")


def test_an_expired_link_is_401(viewer_client: FlaskClient, link: str, clock: FakeClock) -> None:
    clock.advance(hours=11, minutes=59)
    assert viewer_client.get(link).status_code == 200
    clock.advance(minutes=1)
    response = viewer_client.get(link)
    assert response.status_code == 401
    assert response.get_json()["error"] == ("this stream link expired at 2026-03-02 00:00:00 UTC: "
                                            "make a new one on the player page")


def test_the_lifetime_is_configurable(make_app: Callable[..., Flask], viewer_user: Account,
                                      clock: FakeClock) -> None:
    app = make_app(STREAM_LINK_LIFETIME=600)
    with app.test_request_context():
        user = db.session.get(User, viewer_user.id)
        _, grant = stream_links.issue(user, "porch", at(0), at(6), clock())
    assert (grant.expires - clock()).total_seconds() == 600


def test_a_link_opens_no_other_camera_or_range(viewer_client: FlaskClient, link: str) -> None:
    token = parse_qs(urlsplit(link).query)["st"][0]
    start, end = iso_utc(at(0)), iso_utc(at(6))
    for other in (f"yard.m3u8?start={start}&end={end}",
                  f"nobody.m3u8?start={start}&end={end}",  # unknown: the same 403, no 404
                  f"porch.m3u8?start={start}&end={iso_utc(at(7))}",
                  f"porch.m3u8?start={iso_utc(at(1))}&end={end}"):
        response = viewer_client.get(f"/api/v1/playback/{other}&st={token}")
        assert response.status_code == 403, other
        assert response.get_json()["error"] == ("this stream link plays only porch from "
                                                "2026-03-01 10:00:00 to 2026-03-01 10:00:06 UTC")


def test_a_link_opens_no_segment_of_another_camera_or_time(
        viewer_client: FlaskClient, catalog: CatalogWriter, clips: list[Path],
        footage: list[SegmentInfo], link: str) -> None:
    token = parse_qs(urlsplit(link).query)["st"][0]
    later = catalog.segment("porch", at(6), source=clips[0])  # starts where the link ends
    yard = footage[-1].id + 1
    for segment_id in (yard, later.id, 99999):
        for name in ("segment.ts", "file"):
            response = viewer_client.get(f"/api/v1/recordings/{segment_id}/{name}?st={token}")
            assert response.status_code == 403, (segment_id, name)
            assert response.get_json()["error"].startswith("this stream link plays only porch")


def test_a_link_opens_no_other_endpoint(viewer_client: FlaskClient, link: str) -> None:
    token = parse_qs(urlsplit(link).query)["st"][0]
    for path in ("/api/v1/recordings?", "/api/v1/cameras?",
                 "/api/v1/export/porch.mp4?start=2026-03-01T10:00:00Z&"):
        response = viewer_client.get(f"{path}st={token}")
        assert response.status_code == 401, path
        assert response.get_json()["error"] == ("a stream link opens only its own playlist "
                                                "and segments")
    for page in ("/recordings/play?camera=porch&", "/?"):  # the login page, as for anyone
        response = viewer_client.get(f"{page}st={token}")
        assert response.status_code == 302 and "/auth/login" in response.location


def direct_link(app: Flask, user_id: int) -> str:
    """A stream link of porch's footage made for a user without a request of theirs."""
    with app.test_request_context():
        user = db.session.get(User, user_id)
        token, _ = stream_links.issue(user, "porch", at(0), at(6), app.config["CLOCK"]())
    return f"/api/v1/playback/porch.m3u8?start={iso_utc(at(0))}&end={iso_utc(at(6))}&st={token}"


def _sign_out_everywhere(user: User) -> None:
    user.end_sessions()


def _new_password(user: User) -> None:
    user.set_password("another-password-123")


def _disable(user: User) -> None:
    user.active = False


def _delete(user: User) -> None:
    db.session.delete(user)


def test_a_link_dies_with_its_account_or_its_sessions(
        app: Flask, viewer_user: Account, footage: list[SegmentInfo]) -> None:
    player = app.test_client()
    for revoke in (_sign_out_everywhere, _new_password, _disable, _delete):
        link = direct_link(app, viewer_user.id)
        assert player.get(link).status_code == 200, revoke.__name__
        with app.app_context():
            user = db.session.get(User, viewer_user.id)
            revoke(user)
            db.session.commit()
        response = player.get(link)
        assert response.status_code == 401, revoke.__name__
        assert response.get_json()["error"] == (
            "this stream link was revoked (its account signed out everywhere, changed its "
            "password, or was disabled or deleted)")
        if revoke is _disable:
            with app.app_context():
                db.session.get(User, viewer_user.id).active = True
                db.session.commit()


def test_signing_out_everywhere_on_the_users_page_ends_links(
        app: Flask, viewer_client: FlaskClient, viewer_user: Account, admin_user: Account,
        link: str) -> None:
    admin = app.test_client()
    AuthActions(admin).login(admin_user)
    assert admin.post(f"/users/{viewer_user.id}/sessions/revoke").status_code == 302
    assert viewer_client.get(link).status_code == 401


def test_one_logout_keeps_the_links(app: Flask, viewer_client: FlaskClient,
                                    footage: list[SegmentInfo], viewer_user: Account) -> None:
    browser = app.test_client()
    AuthActions(browser).login(viewer_user)
    url = local(make_link(browser)["url"])
    AuthActions(browser).logout()
    assert app.test_client().get(url).status_code == 200


def test_an_api_token_makes_links_too(app: Flask, footage: list[SegmentInfo],
                                      viewer_user: Account) -> None:
    with app.app_context():
        token = db.session.get(User, viewer_user.id).new_api_token(at(0))
        db.session.commit()
    client = app.test_client()
    made = client.post(f"/api/v1/playback/porch/link?start={iso(at(0))}",
                       headers={"Authorization": f"Bearer {token}"})
    assert made.status_code == 200
    assert parse_qs(urlsplit(made.get_json()["url"]).query)["end"] == [iso_utc(at(24 * 3600))]
    assert client.get(local(made.get_json()["url"])).status_code == 200


def test_bad_link_requests_are_400(viewer_client: FlaskClient,
                                   footage: list[SegmentInfo]) -> None:
    for query, message in (("", "start: required"),
                           ("?start=2026-03-01T10:00:00Z&end=2026-03-02T10:00:01Z",
                            "end: the range is longer"),
                           ("?start=2026-03-01T10:00:00Z&st=x", "st: unknown parameter")):
        response = viewer_client.post(f"/api/v1/playback/porch/link{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"].startswith(message)


def test_links_need_a_login_and_name_a_known_camera(app: Flask,
                                                    viewer_client: FlaskClient) -> None:
    url = f"/api/v1/playback/nobody/link?start={iso(at(0))}"
    assert viewer_client.post(url).get_json() == {"error": "no camera named 'nobody'"}
    assert app.test_client().post(url).status_code == 401


def test_the_token_is_never_logged(viewer_client: FlaskClient, footage: list[SegmentInfo],
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = parse_qs(urlsplit(make_link(viewer_client)["url"]).query)["st"][0]
    viewer_client.delete_cookie("nvr_session")
    viewer_client.get(f"/api/v1/playback/porch.m3u8?start={iso(at(0))}&end={iso(at(6))}"
                      f"&st={token}x")  # refused: logged
    assert "made a stream link of porch" in caplog.text
    assert "refused a stream link" in caplog.text
    assert token not in caplog.text


# --- the token parser: garbage never gives a 500 ------------------------------------------

GARBAGE = st.one_of(st.text(max_size=200), st.from_regex(r"[A-Za-z0-9_\-]{0,80}\.[A-Za-z0-9_\-]{0,40}",
                                                         fullmatch=True))
PAYLOADS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=12)


FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(token=GARBAGE)
@example(token="")
@example(token=".")
def test_parsing_garbage_only_ever_rejects(app: Flask, token: str) -> None:
    with app.app_context(), pytest.raises(stream_links.LinkRejected):
        stream_links.parse(token)


@FUZZ
@given(payload=PAYLOADS)
@example(payload=[2**70, 0, "porch", 0, 1, 2])  # more than SQLite's INTEGER holds
@example(payload=[1, 0, "porch", 0, 1, 10**20])  # past year 9999
@example(payload=[1, 0, "porch", 0, 1, -10**20])
@example(payload=[True, 0, "porch", 0, 1, 2])
def test_a_signed_payload_of_any_shape_never_gives_a_500(app: Flask, payload: object) -> None:
    # Only a leaked SECRET_KEY could sign these: even then the answer is a clean refusal.
    token = URLSafeSerializer(app.config["SECRET_KEY"], salt=stream_links.SALT).dumps(payload)
    response = app.test_client().get(
        f"/api/v1/playback/porch.m3u8?start=2026-03-01T10:00:00Z&st={token}")
    assert response.status_code in (401, 403, 404), response.get_data(as_text=True)


@FUZZ
@given(token=st.text(max_size=100))
def test_garbage_in_the_query_is_a_401(app: Flask, token: str) -> None:
    response = app.test_client().get("/api/v1/recordings/1/segment.ts",
                                     query_string={"st": token})
    assert response.status_code == 401
    assert response.get_json()["error"].startswith("this stream link")
