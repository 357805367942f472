"""The NVR web app: log in, find and play footage, watch live, manage users and cameras.

`create_app(test_config)` builds the app. Adding a blueprint (e.g. recordings, live, admin, api):

1. Make a package ``webapp/<name>/`` whose ``__init__.py`` creates
   ``bp = Blueprint("<name>", __name__, url_prefix="/<name>")`` and then imports its ``routes``
   (see ``webapp/users/``). JSON endpoints go under ``/api/`` (e.g. an ``api`` blueprint with
   ``url_prefix="/api/v1"``): there errors and 401/403 answer ``{"error": ...}`` JSON.
2. Add ``"webapp.<name>"`` to ``BLUEPRINTS`` below.
3. Name the blueprint's landing page ``index`` (``recordings.index``, ``live.index``,
   ``admin.index``): the navbar in ``templates/base.html`` links to those endpoints once they exist.

Nothing else is needed for safety: every route already requires a logged-in user (or an API
token), and every POST/PUT/PATCH/DELETE a CSRF token (form field ``csrf_token`` or header
``X-CSRFToken``), in ``webapp.security.guard_request``. Admin-only views add
``@admin_required`` from ``webapp.security``. Query the catalog with ``db.session`` and the
models of ``nvrlib.catalog.models``; the users live in ``webapp.models`` (the "users" bind).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from argon2 import Parameters
from flask import Flask
from sqlalchemy import Engine, event

from nvrlib.catalog import db as catalog_db

from . import assets, security, users_migrations
from .auth.throttle import THROTTLE_EXTENSION, LoginThrottle, ThrottleLimits
from .config import USERS_BIND, Config, finalize
from .extensions import csrf, db, login_manager, migrate
from .ids import IdConverter
from .models import HASHER_EXTENSION, make_hasher
from .recordings.params import refuse_nul_parameters

logger = logging.getLogger(__name__)

# Blueprint packages, each exposing ``bp``; errors first so its handlers cover the others.
BLUEPRINTS: tuple[str, ...] = (
    "webapp.errors",
    "webapp.auth",
    "webapp.main",
    "webapp.users",
    "webapp.account",
    "webapp.recordings",
    "webapp.timeline",
    "webapp.live",
    "webapp.admin",
    "webapp.api",
    "webapp.events",
    "webapp.people",
    "webapp.alerting",
    "webapp.protect",
    "webapp.monitoring",
)
# Links of the navbar: (endpoint, label, admins only); shown once the endpoint exists.
NAV_ITEMS: tuple[tuple[str, str, bool], ...] = (
    ("recordings.index", "Recordings", False),
    ("timeline.index", "Timeline", False),
    ("live.index", "Live", False),
    ("events.index", "Events", False),
    ("people.index", "People", False),
    ("protect.index", "Locks", False),
    ("admin.index", "Admin", True),
    ("users.index", "Users", True),
)
# Third-party front-end files (Bootstrap, hls.js) with their licences: see nvr_third_party/web/README.md.
VENDOR_DIR = Path(__file__).resolve().parent.parent / "nvr_third_party" / "web"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the web app; ``test_config`` overrides any key of `webapp.config.Config`."""
    app = Flask(__name__)
    app.config.from_object(Config)
    if test_config:
        app.config.from_mapping(test_config)
    finalize(app.config)
    hash_parameters = _argon2_parameters(app.config["ARGON2_PARAMETERS"])
    app.extensions[HASHER_EXTENSION] = make_hasher(hash_parameters)
    app.extensions[THROTTLE_EXTENSION] = LoginThrottle(
        lambda: db.engines[USERS_BIND], app.config["CLOCK"],
        ThrottleLimits.from_config(app.config))

    db.init_app(app)
    migrate.init_app(app, db, directory=str(catalog_db.MIGRATIONS_DIR))
    login_manager.init_app(app)
    csrf.init_app(app)
    security.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            _use_sqlite_pragmas(engine)
        if app.config["MIGRATE_ON_START"]:
            _migrate(db.engines[None], db.engines[USERS_BIND])

    app.url_map.converters["int"] = IdConverter  # before any rule: ids of 19+ digits are a 404
    app.before_request(refuse_nul_parameters)
    # served, like the app's own static files, by webapp/assets.py (hashed names, gzip)
    app.add_url_rule("/static/vendor/<path:filename>", endpoint="vendor_static")
    assets.init_app(app, {"static": Path(app.static_folder or ""), "vendor_static": VENDOR_DIR})
    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(name).bp)
    app.jinja_env.globals.update(nav_items=lambda: _nav_items(app),
                                 current_user_is_admin=security.current_user_is_admin)
    return app


def _argon2_parameters(value: Parameters | Mapping[str, int]) -> Parameters:
    if isinstance(value, Parameters):
        return value
    return dataclasses.replace(Config.ARGON2_PARAMETERS, **dict(value))


def _use_sqlite_pragmas(engine: Engine) -> None:
    # The hub's pragmas (WAL, busy_timeout, synchronous=FULL): the web app reads the catalog
    # while the hub writes it, and both must wait for each other rather than fail.
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", catalog_db.sqlite_pragmas)


def _migrate(catalog: Engine, users: Engine) -> None:
    """Bring both schemas up to date (idempotent), even if the hub has not started yet."""
    # Each upgrade holds its database's migration lock: a hub or another web app migrating
    # the same catalog at this moment makes us wait, then find the schema up to date.
    catalog_db.upgrade(catalog)
    users_migrations.upgrade(users)


def _nav_items(app: Flask) -> list[tuple[str, str]]:
    """Return the navbar links the current user may see, for the blueprints that exist."""
    return [(endpoint, label) for endpoint, label, admins_only in NAV_ITEMS
            if endpoint in app.view_functions
            and (not admins_only or security.current_user_is_admin())]
