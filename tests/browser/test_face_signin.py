"""Face sign-in in a real Chromium whose camera is a video of Obama (docs/design/faces.md, 5).

One Chromium with a fake camera (``--use-fake-device-for-media-stream`` fed an MJPEG made from
obama.jpg) and one web app process with ``[webapp] face_signin = true``: user A enrolls over
that camera and signs in with it; user B, enrolled with Biden's photo, is refused. 127.0.0.1
is a secure context; the same app reached as http://nvr.test (mapped to 127.0.0.1) is not, and
the page says the camera needs HTTPS. Screenshots at 1366x768 and 375x812, light and dark.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nvrlib.ffmpeg_bin import ffmpeg_exe
from tests.support.face_photos import as_camera_sends, missing_reason, photos_dir
from tests.support.procs import ROOT, LoggedProcess, free_port
from tests.support.requirements import require

from .chromium import running_chromium
from .support import Page, expect, horizontal_overflow
from .test_accessibility import describe, violations

require(missing_reason(), module_level=True, remedy="run scripts/fetch-face-photos.sh")

WARNING = ("A photo of your face can fool face sign-in. It is a second step after your "
           "password, never a replacement for it.")
ANNA = ("anna", "anna-password-123")  # enrolls over the camera: Obama
BERT = ("bert", "bert-password-123")  # enrolled with biden.jpg
INSECURE_HOST = "nvr.test"  # resolved to 127.0.0.1 by Chromium, but plain HTTP and no localhost
SIZES = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 375, "height": 812}}
TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class FaceWeb:
    """The web app with face sign-in on, and how to reach it."""

    port: int
    folder: Path

    @property
    def base_url(self) -> str:
        """The secure-context address (127.0.0.1)."""
        return f"http://127.0.0.1:{self.port}"


def fake_camera_video(folder: Path) -> Path:
    """An MJPEG of obama.jpg's upper part (face ~180 px), 640x480, 10 fps, 1 s (Chromium loops it).

    4:2:0 it must be: Chromium shows an MJPEG of 4:4:4 frames (what ffmpeg makes of this JPEG
    unless told) as a green picture."""
    video = folder / "obama.mjpeg"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-loop", "1",
                    "-i", str(photos_dir() / "obama.jpg"), "-t", "1", "-r", "10",
                    "-vf", "crop=910:682:0:0,scale=640:480,format=yuvj420p",
                    "-c:v", "mjpeg", "-q:v", "3", "-f", "mjpeg", str(video)],
                   check=True, timeout=60)
    return video


def add_users(folder: Path) -> None:
    """Create A and B in a migrated users database (the server then starts on it)."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import User

    app = create_app({"SECRET_KEY": "unused", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'nvr.db'}",
                      "STORAGE_ROOT": str(folder / "recordings"),
                      "ARGON2_PARAMETERS": {"time_cost": 2, "memory_cost": 19 * 1024,
                                            "parallelism": 1}})
    with app.app_context():
        for name, password in (ANNA, BERT):
            user = User(username=name, role="viewer")
            user.set_password(password)
            db.session.add(user)
        db.session.commit()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture(scope="module")
def face_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceWeb]:
    """``python -m webapp serve`` with ``[webapp] face_signin = true`` on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("face-signin-web")
    add_users(folder)
    (folder / "web.toml").write_text("[webapp]\nface_signin = true\n")
    port = free_port()
    argv = [sys.executable, "-m", "webapp", "serve", "--config", str(folder / "web.toml"),
            "--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{folder / 'nvr.db'}",
            "--storage", str(folder / "recordings")]
    server = LoggedProcess(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=folder)
    try:
        server.wait_line(r"web app listening on http://127\.0\.0\.1", timeout=60)
        yield FaceWeb(port, folder)
    finally:
        if server.proc.poll() is None:
            server.terminate(timeout=20)
        server.kill_group()


@pytest.fixture(scope="module")
def camera_browser(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium whose camera shows Obama, and which maps nvr.test to 127.0.0.1."""
    video = fake_camera_video(tmp_path_factory.mktemp("fake-camera"))
    with running_chromium(playwright, "--use-fake-device-for-media-stream",
                          f"--use-file-for-fake-video-capture={video}",
                          f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1") as chromium:
        yield chromium


@pytest.fixture
def new_page(camera_browser: Any, face_web: FaceWeb) -> Iterator[Any]:
    """Open a page in a fresh context allowed to use the camera."""
    contexts = []

    def make(base_url: str | None = None, bypass_csp: bool = False) -> Page:
        # bypass_csp: only for the axe-core script the test injects, never to make the app work
        context = camera_browser.new_context(base_url=base_url or face_web.base_url,
                                             viewport=SIZES["desktop"], bypass_csp=bypass_csp)
        context.grant_permissions(["camera"])
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def password_step(page: Page, user: tuple[str, str]) -> None:
    """Fill in the login form and submit it."""
    page.goto("/auth/login")
    page.get_by_label("Username").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Log in").click()


def enroll_bert_with_biden(page: Page) -> None:
    """B turns face sign-in on through the account page's form, posting Biden's photo three
    times from the page (as its script posts the camera's pictures)."""
    password_step(page, BERT)
    page.wait_for_url(lambda url: "/auth/login" not in url)  # no face yet: password only
    page.goto("/account/face")
    biden = base64.b64encode(as_camera_sends("biden.jpg")).decode("ascii")
    status = page.evaluate("""async ([password, photo]) => {
        const data = new FormData();
        data.append("password", password);
        const bytes = Uint8Array.from(atob(photo), (c) => c.charCodeAt(0));
        const blob = new Blob([bytes], {type: "image/jpeg"});
        for (let i = 1; i <= 3; i++) data.append("photo", blob, `biden-${i}.jpg`);
        const answer = await fetch("/account/face", {method: "POST", body: data,
                                   headers: {"X-CSRFToken": window.nvr.csrfToken()}});
        return answer.status;
    }""", [BERT[1], biden])
    assert status == 200


def shoot(page: Page, folder: Path, name: str) -> None:
    """Save a full-page screenshot; the page must not scroll sideways."""
    assert horizontal_overflow(page) == 0, name
    page.screenshot(path=folder / f"{name}.png", full_page=True, animations="disabled")


def test_enroll_over_the_camera_then_the_right_face_signs_in(new_page: Any) -> None:
    page = new_page()
    password_step(page, ANNA)
    page.wait_for_url(lambda url: "/auth/login" not in url)  # not enrolled: password only
    page.get_by_role("button", name=ANNA[0]).click()
    page.get_by_role("link", name="Face sign-in").click()
    expect(page.get_by_role("note")).to_have_text(WARNING)
    take = page.get_by_role("button", name="Take picture 1 of 3")
    take.click()
    page.get_by_role("button", name="Take picture 2 of 3").click()
    page.get_by_role("button", name="Take picture 3 of 3").click()
    expect(page.get_by_role("button", name="All pictures taken")).to_be_disabled()
    page.get_by_label("Your password").fill(ANNA[1])
    page.get_by_role("button", name="Turn face sign-in on").click()
    expect(page.get_by_role("alert")).to_contain_text("Face sign-in is on")
    expect(page.get_by_text("3 pictures, taken")).to_be_visible()

    page = new_page()
    password_step(page, ANNA)
    page.wait_for_url("**/auth/login/face")
    expect(page.get_by_role("note")).to_have_text(WARNING)
    page.get_by_role("button", name="Sign in with my face").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    expect(page.get_by_role("button", name=ANNA[0])).to_be_visible()  # the user menu


def test_someone_elses_face_is_refused(new_page: Any) -> None:
    enroll_bert_with_biden(new_page())
    page = new_page()
    password_step(page, BERT)
    page.wait_for_url("**/auth/login/face")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Sign in with my face").click()
    assert posted.value.status == 401
    expect(page.get_by_role("status")).to_contain_text("does not look like you")
    assert page.url.endswith("/auth/login/face")
    expect(page.get_by_role("button", name="Sign in with my face")).to_be_enabled()  # try again


def test_over_plain_http_the_page_says_the_camera_needs_https(new_page: Any,
                                                              face_web: FaceWeb) -> None:
    page = new_page(base_url=f"http://{INSECURE_HOST}:{face_web.port}")
    password_step(page, ANNA)  # enrolled by the first test
    page.wait_for_url("**/auth/login/face")
    expect(page.get_by_role("alert")).to_contain_text("getUserMedia")
    expect(page.get_by_role("alert")).to_contain_text("HTTPS")
    expect(page.get_by_role("button", name="Sign in with my face")).to_be_hidden()


def shoot_every_look(page: Page, folder: Path, name: str) -> None:
    """Screenshots of the page at both sizes, light and dark; axe-core finds nothing serious."""
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.evaluate("scheme => window.nvrTheme.apply(scheme)", scheme)  # as at page load
            shoot(page, folder, f"{name}-{size}-{scheme}")
            if size == "desktop":
                found = violations(page)
                assert not found, f"{name} ({scheme}):\n{describe(found)}"


def test_screenshots_of_both_pages(new_page: Any, screenshot_dir: Path) -> None:
    page = new_page(bypass_csp=True)
    password_step(page, ANNA)
    page.wait_for_url("**/auth/login/face")
    expect(page.get_by_role("button", name="Sign in with my face")).to_be_enabled()
    shoot_every_look(page, screenshot_dir, "face-signin-login")
    page.get_by_role("button", name="Sign in with my face").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.goto("/account/face")
    page.get_by_role("button", name="Take picture 1 of 3").click()
    expect(page.locator("img[alt='Picture 1']")).to_be_visible()
    shoot_every_look(page, screenshot_dir, "face-signin-account")
