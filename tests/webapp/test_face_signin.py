"""Face sign-in (docs/design/faces.md, section 5): enrollment, the second login step with real
photos posted, expiry, the throttle, off by default, the admin's switch, migration u0004."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, select, text
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, encode_multipart

from nvrlib.faces import EMBEDDING_BYTES
from tests.support.face_photos import as_camera_sends, missing_reason
from tests.support.requirements import require
from webapp import face_engine, users_migrations
from webapp.auth import face_signin
from webapp.auth.throttle import throttle_keys
from webapp.extensions import db
from webapp.models import User, UserFace

from .helpers import Account, AuthActions, FakeClock, csrf_token_of, user_row

require(missing_reason(), module_level=True, remedy="run scripts/fetch-face-photos.sh")

WARNING = ("A photo of your face can fool face sign-in. It is a second step after your "
           "password, never a replacement for it.")
HOME = {"REMOTE_ADDR": "192.0.2.7"}


def blank_jpeg() -> bytes:
    """A grey 640x480 picture: no face in it."""
    ok, encoded = cv2.imencode(".jpg", np.full((480, 640, 3), 128, np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """Every test photo as the browser would post it."""
    return {name: as_camera_sends(name) for name in
            ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png")}


@pytest.fixture(scope="module")
def embedding_of(photos: dict[str, bytes]) -> Callable[[str], np.ndarray]:
    """The embedding of a photo's one face (the web app's own engine: one per process)."""
    found: dict[str, np.ndarray] = {}

    def of(name: str) -> np.ndarray:
        if name not in found:
            found[name] = face_signin.face_of(photos[name])
        return found[name]

    return of


@pytest.fixture
def face_app(make_app: Callable[..., Flask]) -> Flask:
    """The web app with face sign-in offered."""
    return make_app(FACE_SIGNIN=True)


@pytest.fixture
def enroll(embedding_of: Callable[[str], np.ndarray]) -> Callable[..., None]:
    """Turn face sign-in on for an account with the faces of these photos (no web request)."""

    def enroll_(app: Flask, account: Account, *names: str) -> None:
        with app.app_context():
            user = db.session.get(User, account.id)
            assert user is not None
            face_signin.enroll(user, [embedding_of(name) for name in names])

    return enroll_


@pytest.fixture
def user(face_app: Flask, make_user: Callable[..., Account]) -> Account:
    """A viewer of the face sign-in app."""
    return make_user("fiona", "fiona-password-123")


def post_photo(client: FlaskClient, data: bytes, **kwargs: object) -> TestResponse:
    """Post a picture to the face step as the page's script does."""
    # Encoded here: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart({"photo": FileStorage(io.BytesIO(data), "face.jpg")})
    return client.post("/auth/login/face", data=body, environ_base=HOME,
                       content_type=f"multipart/form-data; boundary={boundary}", **kwargs)


def password_step(app: Flask, account: Account) -> FlaskClient:
    """A client that passed the password step (and so waits at the face step)."""
    client = app.test_client()
    answer = AuthActions(client).login(account, environ_base=HOME)
    assert answer.status_code == 302 and answer.headers["Location"] == "/auth/login/face"
    return client


def logged_in(client: FlaskClient) -> bool:
    """Tell whether the client has a session (the dashboard answers instead of the login)."""
    return client.get("/").status_code == 200


def user_faces(app: Flask, account: Account) -> list[bytes]:
    """The embeddings stored for an account."""
    with app.app_context():
        return list(db.session.scalars(select(UserFace.embedding)
                                       .where(UserFace.user_id == account.id)))


# --- off by default ------------------------------------------------------------------------

def test_off_by_default_nothing_shows_and_the_password_is_enough(
        make_app: Callable[..., Flask], make_user: Callable[..., Account],
        enroll: Callable[..., None]) -> None:
    app = make_app()
    assert app.config["FACE_SIGNIN"] is False
    account = make_user("olaf", "olaf-password-123")
    enroll(app, account, "obama2.jpg")  # data left from a time it was on
    client = app.test_client()
    answer = AuthActions(client).login(account)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Face sign-in" not in page
    assert client.get("/account/face").status_code == 404
    assert client.post("/account/face/off").status_code == 404


# --- enrollment on /account/face -----------------------------------------------------------

def enroll_form(password: str, *pictures: bytes) -> dict[str, object]:
    """The account page's multipart form."""
    return {"password": password,
            "photo": [(io.BytesIO(p), f"face-{n}.jpg") for n, p in enumerate(pictures, 1)]}


def test_enrolling_takes_the_password_and_three_pictures_of_one_face(
        face_app: Flask, user: Account, photos: dict[str, bytes]) -> None:
    client = face_app.test_client()
    AuthActions(client).login(user)
    page = client.get("/account/face").get_data(as_text=True)
    assert WARNING in page and "getUserMedia" in page and "Off" in page
    obamas = [photos[n] for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]

    def post(form: dict[str, object]) -> TestResponse:
        return client.post("/account/face", data=form, content_type="multipart/form-data")

    assert post(enroll_form("wrong-password", *obamas)).status_code == 401
    answer = post(enroll_form(user.password, *obamas[:2]))
    assert answer.status_code == 400 and "Take 3 pictures" in answer.get_json()["error"]
    answer = post(enroll_form(user.password, obamas[0], blank_jpeg(), obamas[2]))
    assert answer.status_code == 400 and answer.get_json()["error"].startswith(
        "Picture 2 shows no face")
    answer = post(enroll_form(user.password, obamas[0], photos["astronaut.png"], obamas[2]))
    assert answer.status_code == 400 and "do not look like the same person" in \
        answer.get_json()["error"]
    assert user_faces(face_app, user) == [] and not user_row(face_app, user.id).face_signin

    answer = post(enroll_form(user.password, *obamas))
    assert answer.status_code == 200 and answer.get_json() == {"next": "/account/face"}
    stored = user_faces(face_app, user)
    assert len(stored) == 3 and all(len(e) == EMBEDDING_BYTES for e in stored)  # no picture
    assert user_row(face_app, user.id).face_signin
    page = client.get("/account/face").get_data(as_text=True)
    assert "Face sign-in is on" in page and "3 pictures" in page


def test_the_user_turns_it_off_and_the_embeddings_are_deleted(
        face_app: Flask, user: Account, enroll: Callable[..., None]) -> None:
    client = face_app.test_client()
    AuthActions(client).login(user)
    enroll(face_app, user, "obama2.jpg", "obama3.jpg")
    assert client.post("/account/face/off").status_code == 302
    assert user_faces(face_app, user) == [] and not user_row(face_app, user.id).face_signin


# --- the login's face step -----------------------------------------------------------------

def test_the_right_face_after_the_right_password_starts_the_session(
        face_app: Flask, user: Account, enroll: Callable[..., None], photos: dict[str, bytes],
        caplog: pytest.LogCaptureFixture) -> None:
    enroll(face_app, user, "obama2.jpg", "obama3.jpg")
    client = password_step(face_app, user)
    assert not logged_in(client)  # the password alone starts no session
    page = client.get("/auth/login/face").get_data(as_text=True)
    assert WARNING in page and user.username in page
    caplog.set_level(logging.INFO, logger="webapp")
    answer = post_photo(client, photos["obama.jpg"])
    assert answer.status_code == 200 and answer.get_json() == {"next": "/"}
    assert logged_in(client)
    assert re.search(r"face sign-in for 'fiona' from 192\.0\.2\.7 accepted: distance 0\.3\d\d",
                     caplog.text)
    assert user_row(face_app, user.id).last_login_at is not None
    assert client.get("/auth/login/face").status_code == 302  # used up


def test_the_wrong_face_is_401_and_may_try_again(
        face_app: Flask, user: Account, enroll: Callable[..., None], photos: dict[str, bytes],
        caplog: pytest.LogCaptureFixture) -> None:
    enroll(face_app, user, "biden.jpg")
    client = password_step(face_app, user)
    answer = post_photo(client, photos["obama.jpg"])
    assert answer.status_code == 401 and "does not look like you" in answer.get_json()["error"]
    assert "login" not in answer.get_json()  # still pending: try again
    assert re.search(r"face sign-in for 'fiona' from 192\.0\.2\.7 refused: distance 0\.8\d\d",
                     caplog.text)
    assert not logged_in(client)
    assert post_photo(client, photos["biden.jpg"]).status_code == 200
    assert logged_in(client)


def test_remember_me_and_next_survive_the_face_step(
        face_app: Flask, user: Account, enroll: Callable[..., None],
        photos: dict[str, bytes]) -> None:
    enroll(face_app, user, "obama2.jpg")
    client = face_app.test_client()
    AuthActions(client).login(user, remember=True, next_url="/recordings/", environ_base=HOME)
    answer = post_photo(client, photos["obama.jpg"])
    assert answer.get_json() == {"next": "/recordings/"}
    assert client.get_cookie("nvr_remember") is not None


def test_the_pending_login_expires_after_120_s(
        face_app: Flask, user: Account, enroll: Callable[..., None], clock: FakeClock,
        photos: dict[str, bytes]) -> None:
    enroll(face_app, user, "obama2.jpg")
    client = password_step(face_app, user)
    clock.advance(seconds=121)
    answer = post_photo(client, photos["obama.jpg"])
    assert answer.status_code == 401 and answer.get_json()["login"] == "/auth/login"
    assert not logged_in(client)
    answer = client.get("/auth/login/face")
    assert answer.status_code == 302 and answer.headers["Location"] == "/auth/login"


def test_a_new_password_between_the_steps_ends_the_pending_login(
        face_app: Flask, user: Account, enroll: Callable[..., None],
        photos: dict[str, bytes]) -> None:
    enroll(face_app, user, "obama2.jpg")
    client = password_step(face_app, user)
    with face_app.app_context():
        row = db.session.get(User, user.id)
        assert row is not None
        row.set_password("another-password-456")
        db.session.commit()
    assert post_photo(client, photos["obama.jpg"]).status_code == 401
    assert not logged_in(client)


def test_no_face_step_without_the_password_step(face_app: Flask,
                                                 photos: dict[str, bytes]) -> None:
    client = face_app.test_client()
    answer = post_photo(client, photos["obama.jpg"])
    assert answer.status_code == 401 and answer.get_json()["login"] == "/auth/login"
    assert client.get("/auth/login/face").headers["Location"] == "/auth/login"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
PENDING = st.one_of(JSON, st.fixed_dictionaries({}, optional={
    "user": st.one_of(st.integers(), JSON), "at": st.one_of(st.floats(), st.integers(), JSON),
    "remember": JSON, "next": JSON, "epoch": st.one_of(st.integers(), JSON)}))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(held=PENDING)
def test_any_pending_value_is_a_401_or_a_face_check_never_a_500(face_app: Flask, user: Account,
                                                                 held: object) -> None:
    client = face_app.test_client()
    with client.session_transaction() as session:  # as if the secret key had leaked
        session["face_pending"] = held
    assert post_photo(client, b"").status_code in (400, 401)
    assert client.get("/auth/login/face").status_code in (200, 302)


# --- the throttle counts face tries --------------------------------------------------------

def test_the_sixth_wrong_face_is_throttled_as_a_password_try_is(
        face_app: Flask, user: Account, enroll: Callable[..., None],
        photos: dict[str, bytes]) -> None:
    enroll(face_app, user, "biden.jpg")
    client = password_step(face_app, user)
    assert post_photo(client, blank_jpeg()).status_code == 400  # nothing compared: not counted
    assert [post_photo(client, photos["obama.jpg"]).status_code for _ in range(5)] == [401] * 5
    answer = post_photo(client, photos["biden.jpg"])  # even the right face now waits
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 800
    assert not logged_in(client)
    # The same account's password step is a separate count (only the address key is shared).
    assert AuthActions(face_app.test_client()).login(user, environ_base=HOME).status_code == 302


def test_face_tries_have_their_own_pair_and_account_keys_and_share_the_address() -> None:
    password = throttle_keys("Fiona", "192.0.2.7")
    face = throttle_keys("Fiona", "192.0.2.7", factor="face")
    assert face == ("addr:192.0.2.7", "face:pair:fiona|192.0.2.7", "face:acct:fiona")
    assert face[0] == password[0] and set(face[1:]).isdisjoint(password[1:])
    with pytest.raises(ValueError):
        throttle_keys("Fiona", "192.0.2.7", factor="retina")


# --- bad requests get a clear 4xx ----------------------------------------------------------

def test_bad_pictures_are_4xx(face_app: Flask, user: Account, enroll: Callable[..., None],
                              photos: dict[str, bytes]) -> None:
    enroll(face_app, user, "obama2.jpg")
    client = password_step(face_app, user)
    answer = client.post("/auth/login/face", data={"photo": "text"}, environ_base=HOME)
    assert answer.status_code == 415
    answer = client.post("/auth/login/face", data={"other": (io.BytesIO(b"x"), "a.jpg")},
                         content_type="multipart/form-data", environ_base=HOME)
    assert answer.status_code == 400 and "'photo'" in answer.get_json()["error"]
    # (a cut JPEG decodes, grey where the data ran out: then it shows no face)
    for data, words in ((b"GIF89a....", "not a JPEG or PNG"), (b"\xff\xd8\xff\xd9", "damaged"),
                        (b"\xff\xd8\xff\xc0\0\x11\x08\0\x10\0\x10", "could not be decoded"),
                        (photos["obama.jpg"][:2000], "")):
        answer = post_photo(client, data)
        assert answer.status_code == 400 and words in answer.get_json()["error"], data[:8]
    assert post_photo(client, b"\0" * (2 * 1024 * 1024 + 1)).status_code == 413
    assert post_photo(client, photos["obama.jpg"]).status_code == 200  # none of it counted


def test_a_picture_near_the_2_mib_limit_passes_the_csrf_check(
        make_app: Callable[..., Flask], make_user: Callable[..., Account],
        enroll: Callable[..., None], photos: dict[str, bytes]) -> None:
    app = make_app(FACE_SIGNIN=True, WTF_CSRF_ENABLED=True)
    account = make_user("carla", "carla-password-123")
    enroll(app, account, "obama2.jpg")
    client = password_step(app, account)
    token = csrf_token_of(client.get("/auth/login/face"))
    large = photos["obama.jpg"] + b"\0" * (1800 * 1024)  # bytes after the JPEG's end: ignored
    assert post_photo(client, large).status_code == 400  # no CSRF token: refused
    answer = post_photo(client, large, headers={"X-CSRFToken": token})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=64),
                 st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b),
                 st.binary(max_size=64).map(lambda b: b"\x89PNG\r\n\x1a\n" + b)))
def test_the_header_reader_only_ever_refuses_garbage(data: bytes) -> None:
    try:
        width, height = face_engine.image_size(data)
    except face_engine.PhotoRefused:
        return
    assert width >= 0 and height >= 0


def test_a_picture_claiming_too_many_pixels_is_never_decoded() -> None:
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + (50_000).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0"
    with pytest.raises(face_engine.PhotoRefused, match="too large"):
        face_engine.decode_photo(png)


# --- the admin's switch, and the users database ---------------------------------------------

def test_an_admin_turns_face_signin_off_never_on(
        face_app: Flask, user: Account, admin_user: Account, enroll: Callable[..., None]) -> None:
    enroll(face_app, user, "obama2.jpg")
    admin = face_app.test_client()
    AuthActions(admin).login(admin_user)  # the admin has no face sign-in: the password is enough
    page = admin.get("/users/").get_data(as_text=True)
    assert "face sign-in" in page and f"/users/{user.id}/face-signin/off" in page
    assert admin.post(f"/users/{user.id}/face-signin/off").status_code == 302
    assert user_faces(face_app, user) == [] and not user_row(face_app, user.id).face_signin
    assert not [rule for rule in face_app.url_map.iter_rules()
                if rule.rule.startswith("/users/") and "face" in rule.rule
                and not rule.rule.endswith("/off")]
    answer = AuthActions(face_app.test_client()).login(user)
    assert answer.headers["Location"] == "/"  # the password alone again


def test_viewers_cannot_turn_others_off(face_app: Flask, user: Account,
                                        admin_user: Account) -> None:
    client = face_app.test_client()
    AuthActions(client).login(user)
    assert client.post(f"/users/{admin_user.id}/face-signin/off").status_code == 403


def test_deleting_a_user_deletes_their_faces(face_app: Flask, user: Account,
                                             enroll: Callable[..., None]) -> None:
    enroll(face_app, user, "obama2.jpg", "obama3.jpg")
    with face_app.app_context():
        db.session.execute(User.__table__.delete().where(User.id == user.id))
        db.session.commit()
    assert user_faces(face_app, user) == []


def test_migration_u0004_adds_face_signin_and_goes_back(users_db: str) -> None:
    engine = create_engine(users_db)
    config = users_migrations.alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "u0003")
            connection.execute(text(
                "INSERT INTO users (username, password_hash, role, active, created_at) "
                "VALUES ('old', 'h', 'viewer', true, '2026-01-01 00:00:00+00')"))
            command.upgrade(config, "u0004")
            assert connection.execute(text("SELECT face_signin FROM users")).all() == [(False,)]
            connection.execute(text(
                "INSERT INTO user_faces (user_id, embedding, created_at) SELECT id, :e, "
                "created_at FROM users"), {"e": b"\0" * EMBEDDING_BYTES})
            command.downgrade(config, "u0003")
            assert "user_faces" not in inspect(connection).get_table_names()
            assert "face_signin" not in {c["name"] for c in inspect(connection).get_columns(
                "users")}
            assert connection.execute(text("SELECT username FROM users")).all() == [("old",)]
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_the_config_file_turns_it_on(tmp_path: Path) -> None:
    from webapp.config import check_file, flask_overrides, settings_from

    config = tmp_path / "hub.toml"
    config.write_text("[webapp]\nface_signin = true\n")
    assert flask_overrides(settings_from(config, {}, {}))["FACE_SIGNIN"] is True
    config.write_text('[webapp]\nface_signin = "yes"\n')
    assert check_file(config, {}) == ["webapp.face_signin: expected true or false, "
                                      "got 'yes'"]


def test_the_warning_is_the_same_on_the_pages_and_in_the_docs() -> None:
    root = Path(__file__).resolve().parents[2]
    assert face_signin.WARNING == WARNING
    for doc in ("README.md", "docs/design/faces.md"):
        assert WARNING in (root / doc).read_text(encoding="utf-8"), doc
