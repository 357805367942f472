"""24 parallel wrong passwords against a served web app get at most the allowed password
checks, on a SQLite and on a PostgreSQL users database; the owner still gets in."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from flask import Flask

from webapp.extensions import db
from webapp.models import User

from .served import count_password_checks, login, served

TRIES = 24
OWNER = ("olga", "olga-password-123")
HOME = "127.0.0.1"


def add_owner(app: Flask) -> None:
    """Create the attacked account."""
    with app.app_context():
        user = User(username=OWNER[0], role="viewer", created_at=app.config["CLOCK"]())
        user.set_password(OWNER[1])
        db.session.add(user)
        db.session.commit()


def attack(port: int, sources: list[str]) -> list[int]:
    """Send one wrong password per source, all at once; return the statuses."""
    statuses: list[int] = []
    start = threading.Barrier(len(sources))

    def one(number: int, source: str) -> None:
        start.wait(timeout=30)
        statuses.append(login(port, OWNER[0], f"guess-{number}", source=source).status)

    threads = [threading.Thread(target=one, args=(n, s)) for n, s in enumerate(sources)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == len(sources)
    return statuses


def test_parallel_tries_from_one_address_get_five_checks(
        make_app: Callable[..., Flask], users_db: str) -> None:
    app = make_app(USERS_DB_URL=users_db, CLOCK=lambda: dt.datetime.now(dt.timezone.utc))
    add_owner(app)
    hasher = count_password_checks(app)
    with served(app, threads=TRIES) as port:
        statuses = attack(port, ["127.0.0.2"] * TRIES)
        assert hasher.checks <= app.config["LOGIN_MAX_FAILURES"] == 5
        assert sorted(set(statuses)) == [401, 429]
        assert statuses.count(401) == hasher.checks
        assert login(port, *OWNER, source=HOME).status == 302  # the owner, from their address


def test_parallel_tries_from_many_addresses_are_slowed_and_the_owner_gets_in(
        make_app: Callable[..., Flask], users_db: str) -> None:
    app = make_app(USERS_DB_URL=users_db, CLOCK=lambda: dt.datetime.now(dt.timezone.utc),
                   LOGIN_ACCOUNT_SLOWDOWN_AFTER=6, LOGIN_ACCOUNT_DELAY=dt.timedelta(minutes=10))
    add_owner(app)
    with served(app, threads=TRIES) as port:
        assert login(port, *OWNER, source=HOME).status == 302  # HOME is now a known address
        hasher = count_password_checks(app)
        statuses = attack(port, [f"127.0.0.{10 + n % 6}" for n in range(TRIES)])
        assert hasher.checks <= 6 + 1  # the free checks, then one per (10 min) delay
        assert statuses.count(401) == hasher.checks
        assert login(port, *OWNER, source=HOME).status == 302
        assert login(port, *OWNER, source="127.0.0.99").status == 429  # a new place waits
