"""Stream links: a playlist URL with a signed, expiring token opens that playlist and its
segments, for players that send no header or cookie, and nothing else.

One app per module (its catalog holds porch's real footage, a segment of yard and a later one
of porch); each test makes its own links, and puts the clock back.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer
from sqlalchemy import create_engine, inspect, text

from webapp import create_app, stream_links, users_migrations
from webapp.catalog_queries import iso_utc
from webapp.extensions import db
from webapp.models import ROLE_ADMIN, ROLE_VIEWER, User

from .helpers import ADMIN_PASSWORD, VIEWER_PASSWORD, AuthActions, FakeClock, base_config, dispose
from .test_playback import entries
from .test_recordings_support import CatalogWriter, SegmentInfo, at, make_clips

START = FakeClock().now
RANGE = f"start={iso_utc(at(0))}&end={iso_utc(at(6))}"
PORCH = f"/api/v1/playback/porch.m3u8?{RANGE}"


@dataclass(frozen=True)
class World:
    """The module's app, its clock, porch's footage, the ids of other segments, its users."""

    app: Flask
    clock: FakeClock
    footage: list[SegmentInfo]
    clips: list[Path]
    yard: int
    later: int
    viewer: int
    admin: int


def _add_user(app: Flask, name: str, password: str, role: str = ROLE_VIEWER) -> int:
    with app.app_context():
        user = User(username=name, role=role, created_at=START)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_dbs: Path) -> Iterator[World]:
    """The app (made once for the module) with footage and a viewer and an admin."""
    folder = tmp_path_factory.mktemp("stream-links")
    for source in migrated_dbs.glob("*.db*"):
        shutil.copy(source, folder / source.name)
    clock = FakeClock()
    app = create_app({**base_config(folder), "CLOCK": clock})
    clips = make_clips(tmp_path_factory.getbasetemp() / "recording-clips")
    catalog = CatalogWriter(app)
    footage = catalog.footage(clips)
    yard = catalog.segment("yard", at(0), source=clips[0]).id
    later = catalog.segment("porch", at(6), source=clips[0]).id  # starts where links end
    yield World(app, clock, footage, clips, yard, later,
                _add_user(app, "victor", VIEWER_PASSWORD),
                _add_user(app, "alice", ADMIN_PASSWORD, ROLE_ADMIN))
    dispose(app)


@pytest.fixture(autouse=True)
def _clock_back(world: World) -> None:
    world.clock.now = START


@pytest.fixture
def viewer(world: World) -> FlaskClient:
    """A browser logged in as the viewer."""
    client = world.app.test_client()
    assert AuthActions(client).login("victor", VIEWER_PASSWORD).status_code == 302
    return client


@pytest.fixture
def player(world: World) -> FlaskClient:
    """A client with no cookie and no header: VLC, mpv, a TV."""
    return world.app.test_client(use_cookies=False)


def make_link(client: FlaskClient, camera: str = "porch", query: str = RANGE) -> dict[str, str]:
    """POST for a stream link; return the JSON answer."""
    response = client.post(f"/api/v1/playback/{camera}/link?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def local(url: str) -> str:
    """The path and query of an absolute URL (what the test client takes)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def token_of(url: str) -> str:
    """The st= token of a link."""
    return parse_qs(urlsplit(url).query)["st"][0]


@pytest.fixture
def link(viewer: FlaskClient) -> str:
    """A stream link of porch's footage from T0 to T0 + 6 s (path and query)."""
    return local(make_link(viewer)["url"])


def direct_link(app: Flask, user_id: int) -> str:
    """A stream link of porch's footage made for a user without a request of theirs."""
    with app.test_request_context():
        user = db.session.get(User, user_id)
        token, _ = stream_links.issue(user, "porch", at(0), at(6), app.config["CLOCK"]())
    return f"{PORCH}&st={token}"


def test_a_link_plays_its_playlist_and_segments_without_login(
        world: World, viewer: FlaskClient, player: FlaskClient) -> None:
    answer = make_link(viewer)
    assert answer["expires"] == iso_utc(START + stream_links.DEFAULT_LIFETIME)
    url = urlsplit(answer["url"])
    assert url.scheme == "http" and url.path == "/api/v1/playback/porch.m3u8"
    query = parse_qs(url.query)
    assert query["start"] == [iso_utc(at(0))] and query["end"] == [iso_utc(at(6))]
    playlist = player.get(local(answer["url"]))
    assert playlist.status_code == 200, playlist.get_json()
    assert "Set-Cookie" not in playlist.headers  # a link makes no session
    segments = entries(playlist.get_data(as_text=True).splitlines())
    token = query["st"][0]
    assert [s["uri"] for s in segments] == [f"../recordings/{row.id}/segment.ts?st={token}"
                                            for row in world.footage]
    for segment, clip in zip(segments, world.clips):
        response = player.get(urljoin(local(answer["url"]), str(segment["uri"])), buffered=True)
        assert response.status_code == 200
        assert response.get_data() == clip.read_bytes()
    old_url = player.get(f"/api/v1/recordings/{world.footage[0].id}/file?st={token}",
                         buffered=True)
    assert old_url.status_code == 200
    old_url.close()


def test_without_a_link_the_playlist_names_segments_without_a_token(
        world: World, viewer: FlaskClient) -> None:
    response = viewer.get(PORCH)
    uris = [s["uri"] for s in entries(response.get_data(as_text=True).splitlines())]
    assert uris == [f"../recordings/{row.id}/segment.ts" for row in world.footage]


def _tampered(url: str) -> str:
    return url[:-1] + ("A" if url[-1] != "A" else "B")


def test_a_damaged_link_is_401(player: FlaskClient, link: str) -> None:
    for damaged in (_tampered(link), link.replace("st=", "st=x"), link.replace("st=", "st=&x=")):
        response = player.get(damaged)
        assert response.status_code == 401, damaged
        assert response.get_json()["error"] == ("this stream link is damaged or was not made by "
                                                "this server: make a new one on the player page")


def test_an_expired_link_is_401(world: World, player: FlaskClient, link: str) -> None:
    world.clock.advance(hours=11, minutes=59)
    assert player.get(link).status_code == 200
    world.clock.advance(minutes=1)
    response = player.get(link)
    assert response.status_code == 401
    assert response.get_json()["error"] == ("this stream link expired at 2026-03-02 00:00:00 UTC: "
                                            "make a new one on the player page")


def test_the_lifetime_is_configurable(world: World) -> None:
    with world.app.test_request_context():
        user = db.session.get(User, world.viewer)
        try:
            world.app.config["STREAM_LINK_LIFETIME"] = 600
            _, grant = stream_links.issue(user, "porch", at(0), at(6), START)
        finally:
            del world.app.config["STREAM_LINK_LIFETIME"]
    assert (grant.expires - START).total_seconds() == 600


def test_a_link_opens_no_other_camera_or_range(player: FlaskClient, link: str) -> None:
    token = token_of(link)
    start, end = iso_utc(at(0)), iso_utc(at(6))
    for other in (f"yard.m3u8?start={start}&end={end}",
                  f"nobody.m3u8?start={start}&end={end}",  # unknown: the same 403, no 404
                  f"porch.m3u8?start={start}&end={iso_utc(at(7))}",
                  f"porch.m3u8?start={iso_utc(at(1))}&end={end}"):
        response = player.get(f"/api/v1/playback/{other}&st={token}")
        assert response.status_code == 403, other
        assert response.get_json()["error"] == ("this stream link plays only porch from "
                                                "2026-03-01 10:00:00 to 2026-03-01 10:00:06 UTC")


def test_a_link_opens_no_segment_of_another_camera_or_time(world: World, player: FlaskClient,
                                                           link: str) -> None:
    token = token_of(link)
    for segment_id in (world.yard, world.later, 99999):
        for name in ("segment.ts", "file"):
            response = player.get(f"/api/v1/recordings/{segment_id}/{name}?st={token}")
            assert response.status_code == 403, (segment_id, name)
            assert response.get_json()["error"].startswith("this stream link plays only porch")


def test_a_link_opens_no_other_endpoint(player: FlaskClient, link: str) -> None:
    token = token_of(link)
    for path in ("/api/v1/recordings?", "/api/v1/cameras?",
                 "/api/v1/export/porch.mp4?start=2026-03-01T10:00:00Z&"):
        response = player.get(f"{path}st={token}")
        assert response.status_code == 401, path
        assert response.get_json()["error"] == ("a stream link opens only its own playlist "
                                                "and segments")
    for page in ("/recordings/play?camera=porch&", "/?"):  # the login page, as for anyone
        response = player.get(f"{page}st={token}")
        assert response.status_code == 302 and "/auth/login" in response.location
        assert token not in response.location


def _sign_out_everywhere(user: User) -> None:
    user.end_sessions()


def _new_password(user: User) -> None:
    user.set_password("another-password-123")


def _disable(user: User) -> None:
    user.active = False


def _delete(user: User) -> None:
    db.session.delete(user)


def test_a_link_dies_with_its_account_or_its_sessions(world: World,
                                                      player: FlaskClient) -> None:
    user_id = _add_user(world.app, "rita", "rita-password-123")
    for revoke in (_sign_out_everywhere, _new_password, _disable, _delete):
        link = direct_link(world.app, user_id)
        assert player.get(link).status_code == 200, revoke.__name__
        with world.app.app_context():
            revoke(db.session.get(User, user_id))
            db.session.commit()
        response = player.get(link)
        assert response.status_code == 401, revoke.__name__
        assert response.get_json()["error"] == (
            "this stream link was revoked (its account signed out everywhere, changed its "
            "password, or was disabled or deleted)")
        if revoke is _disable:
            with world.app.app_context():
                db.session.get(User, user_id).active = True
                db.session.commit()


def test_signing_out_everywhere_on_the_users_page_ends_links(
        world: World, player: FlaskClient, link: str) -> None:
    admin = world.app.test_client()
    AuthActions(admin).login("alice", ADMIN_PASSWORD)
    assert admin.post(f"/users/{world.viewer}/sessions/revoke").status_code == 302
    assert player.get(link).status_code == 401


def test_one_logout_keeps_the_links(viewer: FlaskClient, player: FlaskClient) -> None:
    url = local(make_link(viewer)["url"])
    AuthActions(viewer).logout()
    assert player.get(url).status_code == 200


def test_an_api_token_makes_links_too(world: World, player: FlaskClient) -> None:
    with world.app.app_context():
        token = db.session.get(User, world.viewer).new_api_token(START)
        db.session.commit()
    made = player.post(f"/api/v1/playback/porch/link?start={iso_utc(at(0))}",
                       headers={"Authorization": f"Bearer {token}"})
    assert made.status_code == 200
    assert parse_qs(urlsplit(made.get_json()["url"]).query)["end"] == [iso_utc(at(24 * 3600))]
    assert player.get(local(made.get_json()["url"])).status_code == 200


def test_bad_link_requests(viewer: FlaskClient, player: FlaskClient) -> None:
    for query, message in (("", "start: required"),
                           ("?start=2026-03-01T10:00:00Z&end=2026-03-02T10:00:01Z",
                            "end: the range is longer"),
                           ("?start=2026-03-01T10:00:00Z&st=x", "st: unknown parameter")):
        response = viewer.post(f"/api/v1/playback/porch/link{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"].startswith(message)
    url = f"/api/v1/playback/nobody/link?start={iso_utc(at(0))}"
    assert viewer.post(url).get_json() == {"error": "no camera named 'nobody'"}
    assert player.post(url).status_code == 401


def test_the_token_is_never_logged(viewer: FlaskClient, player: FlaskClient,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = token_of(make_link(viewer)["url"])
    player.get(f"{PORCH}&st={token}x")  # refused: logged
    assert "made a stream link of porch" in caplog.text
    assert "refused a stream link" in caplog.text
    assert token not in caplog.text


def test_the_users_migration_adds_the_epoch_and_goes_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}")
    config = users_migrations.alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "u0002")
            connection.execute(text(
                "INSERT INTO users (username, password_hash, role, active, created_at) "
                "VALUES ('old', 'h', 'viewer', 1, '2026-01-01 00:00:00')"))
            command.upgrade(config, "u0003")
            assert connection.execute(text("SELECT stream_link_epoch FROM users")).all() == [(0,)]
            command.downgrade(config, "u0002")
            columns = {c["name"] for c in inspect(connection).get_columns("users")}
            assert "stream_link_epoch" not in columns
    finally:
        engine.dispose()


# --- the token parser: garbage never gives a 500 ------------------------------------------

# any text, and text shaped like a token (base64url, a dot, a signature)
TOKEN_SHAPED = st.from_regex(r"\.?[A-Za-z0-9_\-]{0,80}\.[A-Za-z0-9_\-]{0,40}", fullmatch=True)
GARBAGE = st.one_of(st.text(max_size=200), TOKEN_SHAPED)
PAYLOADS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=12)


# The only function-scoped fixture they see is the autouse clock reset: nothing to redo per input.
FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(token=GARBAGE)
@example(token="")
@example(token=".")
def test_parsing_garbage_only_ever_rejects(world: World, token: str) -> None:
    with world.app.app_context(), pytest.raises(stream_links.LinkRejected):
        stream_links.parse(token)


@FUZZ
@given(payload=PAYLOADS)
@example(payload=[2**70, 0, "porch", 0, 1, 2])  # more than SQLite's INTEGER holds
@example(payload=[1, 0, "porch", 0, 1, 10**20])  # past year 9999
@example(payload=[1, 0, "porch", 0, 1, -10**20])
@example(payload=[True, 0, "porch", 0, 1, 2])
def test_a_signed_payload_of_any_shape_never_gives_a_500(world: World, payload: object) -> None:
    # Only a leaked SECRET_KEY could sign these: even then the answer is a clean refusal.
    secret = world.app.config["SECRET_KEY"]
    token = URLSafeSerializer(secret, salt=stream_links.SALT).dumps(payload)
    response = world.app.test_client(use_cookies=False).get(
        f"/api/v1/playback/porch.m3u8?start=2026-03-01T10:00:00Z&st={token}")
    assert response.status_code < 500, response.get_data(as_text=True)


@FUZZ
@given(token=st.text(max_size=100))
def test_garbage_in_the_query_is_a_401(world: World, token: str) -> None:
    response = world.app.test_client(use_cookies=False).get("/api/v1/recordings/1/segment.ts",
                                                            query_string={"st": token})
    assert response.status_code == 401
    assert response.get_json()["error"].startswith("this stream link")
