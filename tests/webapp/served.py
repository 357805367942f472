"""The web app served by waitress on 127.0.0.1 in a thread, and a raw HTTP client for it."""

from __future__ import annotations

import contextlib
import http.client
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie

import waitress
from waitress import wasyncore
from argon2 import PasswordHasher
from flask import Flask

from webapp.models import HASHER_EXTENSION


@contextlib.contextmanager
def served(app: Flask, threads: int = 12) -> Iterator[int]:
    """Serve ``app`` with waitress on a free port of 127.0.0.1; yield the port; always stop."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
    stop = threading.Event()

    def run() -> None:
        # waitress's own run() loops until its sockets close under it (EBADF from another
        # thread): this loop stops on a flag and closes everything in its own thread.
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=server._map, count=1)
        finally:
            server.task_dispatcher.shutdown()
            wasyncore.close_all(server._map)

    thread = threading.Thread(target=run, name="waitress", daemon=True)
    thread.start()
    try:
        yield server.effective_port  # type: ignore[union-attr]
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "waitress did not stop"


@dataclass
class Answer:
    """Status, Location and the cookies one response set (name -> value; "" when deleted)."""

    status: int
    location: str
    cookies: dict[str, str]
    body: str


def request(port: int, method: str, path: str, cookies: dict[str, str] | None = None,
            form: dict[str, str] | None = None, source: str = "127.0.0.1") -> Answer:
    """Send one request from address ``source`` (any 127.x.y.z) with these cookies."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                            source_address=(source, 0))
    headers = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        jar: dict[str, str] = {}
        for header in response.headers.get_all("Set-Cookie") or []:
            parsed = SimpleCookie()
            parsed.load(header)
            jar.update({name: morsel.value for name, morsel in parsed.items()})
        return Answer(response.status, response.headers.get("Location", ""), jar, text)
    finally:
        connection.close()


def login(port: int, username: str, password: str, remember: bool = False,
          source: str = "127.0.0.1") -> Answer:
    """POST the login form (the app under test has CSRF off)."""
    form = {"username": username, "password": password}
    if remember:
        form["remember"] = "y"
    return request(port, "POST", "/auth/login", form=form, source=source)


class CountingHasher(PasswordHasher):
    """The app's argon2id hasher that also counts its password checks."""

    def __init__(self, model: PasswordHasher) -> None:
        super().__init__(time_cost=model.time_cost, memory_cost=model.memory_cost,
                         parallelism=model.parallelism, hash_len=model.hash_len,
                         salt_len=model.salt_len, type=model.type)
        self.checks = 0
        self._mutex = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        """Count the check, then verify as argon2 does."""
        with self._mutex:
            self.checks += 1
        return super().verify(hash, password)


def count_password_checks(app: Flask) -> CountingHasher:
    """Make ``app`` count every password check (real and dummy ones alike)."""
    hasher = CountingHasher(app.extensions[HASHER_EXTENSION])
    app.extensions[HASHER_EXTENSION] = hasher
    return hasher
