"""Chromium logs in over HTTPS to the web app serving its own (self-signed) certificate."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.certs import openssl_missing, self_signed
from tests.support.procs import ROOT, LoggedProcess, free_port
from tests.support.requirements import require

from .support import expect

require(openssl_missing(), module_level=True)


@pytest.fixture(scope="module")
def https_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The web app on https://127.0.0.1:PORT with a fresh admin; yields (base URL, password)."""
    folder = tmp_path_factory.mktemp("https-web")
    cert, key = self_signed(folder)
    port = free_port()
    argv = [sys.executable, "-m", "webapp", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--db", f"sqlite:///{folder / 'nvr.db'}", "--storage", str(folder / "recordings"),
            "--tls-cert", str(cert), "--tls-key", str(key), "--ensure-admin"]
    server = LoggedProcess(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=folder)
    try:
        server.wait_line(r"web app listening on https://127\.0\.0\.1", timeout=60)
        password = server.wait_line(r"^\s+password: (\S+)").group(1)
        yield f"https://127.0.0.1:{port}", password
    finally:
        if server.proc.poll() is None:
            server.terminate(timeout=20)
        server.kill_group()


def test_login_over_https_gets_only_secure_cookies(browser: Any,
                                                   https_web: tuple[str, str]) -> None:
    base_url, password = https_web
    context = browser.new_context(base_url=base_url, ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto("/auth/login")
        page.get_by_label("Remember me").check()
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(password)
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.get_by_role("button", name="Log in").click()
        assert posted.value.headers["strict-transport-security"].startswith("max-age=")
        page.wait_for_url(lambda url: "/auth/login" not in url)
        expect(page.get_by_role("button", name="admin")).to_be_visible()
        cookies = {c["name"]: c for c in context.cookies()}
        assert {"nvr_session", "nvr_remember"} <= set(cookies)
        assert all(c["secure"] and c["httpOnly"] for c in cookies.values()), cookies
        assert page.url.startswith(base_url)
    finally:
        context.close()

