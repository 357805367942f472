"""`python -m webapp`: create-user, ensure-admin and serve (waitress), partly as real processes."""

from __future__ import annotations

import io
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tests.support.notify import NotifySocket
from tests.support.procs import ROOT, LoggedProcess, free_port
from webapp import cli

TIMEOUT = 60


def run(args: list[str], cwd: Path, stdin: str = "", password_env: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run `python -m webapp ARGS` in ``cwd`` and return its result."""
    env = {k: v for k, v in os.environ.items() if k != "NVR_PASSWORD"}
    env["PYTHONPATH"] = str(ROOT)
    if password_env is not None:
        env["NVR_PASSWORD"] = password_env
    return subprocess.run([sys.executable, "-m", "webapp", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=env, timeout=TIMEOUT)


def db_flags(folder: Path) -> list[str]:
    return ["--db", f"sqlite:///{folder / 'nvr.db'}", "--storage", str(folder / "recordings")]


def users(folder: Path, db_name: str = "users.db") -> dict[str, tuple[str, str]]:
    """Return username -> (role, password hash) from a users database."""
    with closing(sqlite3.connect(folder / db_name)) as conn:
        return {name: (role, hashed) for name, role, hashed
                in conn.execute("SELECT username, role, password_hash FROM users")}


def main(args: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    """Run the CLI in this process (quicker than a child) with ``stdin`` as standard input."""
    monkeypatch.delenv("NVR_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(args)


def test_create_user_reads_the_password_from_stdin(tmp_path: Path) -> None:
    result = run(["create-user", "bob", "--admin", *db_flags(tmp_path)], tmp_path,
                 stdin="bob-password-12\n")
    assert result.returncode == 0, result.stderr
    assert "created admin 'bob'" in result.stdout
    role, hashed = users(tmp_path)["bob"]
    assert role == "admin" and hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PasswordHasher().verify(hashed, "bob-password-12")
    assert "bob-password-12" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # the flags, not the defaults, were used


def test_create_user_takes_nvr_password_and_makes_a_viewer_by_default(tmp_path: Path) -> None:
    result = run(["create-user", "carl", *db_flags(tmp_path)], tmp_path,
                 stdin="ignored-stdin-line\n", password_env="carl-password-12")
    assert result.returncode == 0, result.stderr
    role, hashed = users(tmp_path)["carl"]
    assert role == "viewer" and PasswordHasher().verify(hashed, "carl-password-12")


@pytest.mark.parametrize("stdin, message", [
    ("short\n", "too short: use at least 10 characters"),
    ("\n", "The password is empty."),
    ("", "The password is empty."),
])
def test_create_user_refuses_a_bad_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], stdin: str,
                                            message: str) -> None:
    assert main(["create-user", "dan", *db_flags(tmp_path)], monkeypatch, stdin) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "users.db").exists()


def test_create_user_refuses_an_existing_name_and_honours_users_db(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    flags = [*db_flags(tmp_path), "--users-db", f"sqlite:///{tmp_path / 'people.db'}"]
    assert main(["create-user", "erin", *flags], monkeypatch, "erin-password-1\n") == 0
    assert main(["create-user", "erin", *flags], monkeypatch, "other-password-1\n") == 1
    assert "user 'erin' already exists" in capsys.readouterr().err
    assert list(users(tmp_path, "people.db")) == ["erin"]
    assert not (tmp_path / "users.db").exists()


def test_create_user_reads_the_shared_config_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f'db = "sqlite:///{tmp_path / "cat.db"}"\nstorage = "{tmp_path / "rec"}"\n'
                      f'[webapp]\nusers_db = "sqlite:///{tmp_path / "web-users.db"}"\n')
    assert main(["create-user", "finn", "--config", str(config)], monkeypatch, "finn-password-1\n") == 0
    assert list(users(tmp_path, "web-users.db")) == ["finn"]
    assert (tmp_path / "cat.db").exists()


def test_a_bad_config_file_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[webapp]\nhots = "127.0.0.1"\n')
    assert main(["create-user", "gus", "--config", str(config)], monkeypatch, "gus-password-12\n") == 2
    assert "unknown key 'hots'" in capsys.readouterr().err


def test_ensure_admin_prints_the_login_only_on_the_first_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["ensure-admin", "--port", "8123", *db_flags(tmp_path)], monkeypatch) == 0
    first = capsys.readouterr().out
    assert "NVR web app: http://127.0.0.1:8123/" in first
    password = next(line.split(": ", 1)[1] for line in first.splitlines()
                    if line.strip().startswith("password:"))
    role, hashed = users(tmp_path)["admin"]
    assert role == "admin" and PasswordHasher().verify(hashed, password)
    assert password not in caplog.text
    assert main(["ensure-admin", "--port", "8123", *db_flags(tmp_path)], monkeypatch) == 0
    second = capsys.readouterr().out
    assert "NVR web app: http://127.0.0.1:8123/" in second
    assert "password" not in second
    assert users(tmp_path)["admin"][1] == hashed


def get(url: str) -> tuple[int, dict[str, str], str]:
    """GET ``url`` without following redirects; return status, headers and body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read().decode()


def test_serve_runs_under_waitress_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    notify = NotifySocket(tmp_path / "notify.sock")  # as under a Type=notify unit
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": notify.path}
    argv = [sys.executable, "-m", "webapp", "--host", "127.0.0.1", "--port", str(port),
            "--ensure-admin", *db_flags(tmp_path)]
    server = LoggedProcess(argv, env=env, cwd=tmp_path)
    try:
        server.wait_line(r"web app listening on http://127\.0\.0\.1:\d+", timeout=TIMEOUT)
        notify.wait_for("READY=1", timeout=TIMEOUT)
        assert "password: " in server.output  # first start: the admin login, once
        status, headers, body = get(f"http://127.0.0.1:{port}/auth/login")
        assert status == 200 and "Log in" in body
        assert headers["Server"] == "nvr"  # waitress, with our ident
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        status, headers, _ = get(f"http://127.0.0.1:{port}/")
        assert status == 302 and headers["Location"].startswith("/auth/login")
        assert server.terminate(timeout=20) == 0
        assert "web app stopped" in server.output
        notify.wait_for("STOPPING=1", timeout=5)
    finally:
        if server.proc.poll() is None:
            server.kill_group()
        notify.close()


def test_serve_reports_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), *db_flags(tmp_path)]
        result = run(args, tmp_path)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flags, message", [
    (["--tls-cert", "missing.crt", "--tls-key", "missing.key"], "TLS: no such file missing.crt"),
    (["--tls-cert", "missing.crt"], "tls_cert and tls_key go together"),
    (["--trusted-proxies", "proxy.example"], "'proxy.example' is not an IP address"),
])
def test_serve_refuses_bad_tls_and_proxy_settings_in_one_line(
        tmp_path: Path, flags: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["serve", "--host", "127.0.0.1", "--port", "0", *flags, *db_flags(tmp_path)])
    assert code != 0
    assert message in capsys.readouterr().err
