"""Command line of the web app: serve it (webapp.server), create users, create the first admin.

    python -m webapp [serve] [--host H] [--port P] [--tls-cert F --tls-key F]
                     [--trusted-proxies A,B] [--ensure-admin] [common flags]
    python -m webapp create-user NAME [--admin] [common flags]   (password: stdin or $NVR_PASSWORD)
    python -m webapp ensure-admin [--host H] [--port P] [common flags]
    python -m webapp check-config FILE   (exit 0 and "FILE: ok", or 1 and one line per problem)

Common flags: --config FILE (the hub's TOML file; [webapp] host/port/users_db/trusted_proxies/
public_metrics/tls_cert/tls_key/hsts_max_age/storage_mounts),
--db URL, --storage DIR, --users-db URL, --log-level. Flags beat the file; the defaults are the
hub's, so with no flags the web app and the hub find the same catalog.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from nvrlib import camera_urls
from nvrlib.catalog.db import redacted
from nvrlib.ffmpeg_bin import configure as configure_ffmpeg, log_ffmpeg_in_background
from nvrlib.redact import install_log_redaction
from nvrlib.sdnotify import Notifier
from recorder.config import DEFAULT_DB, DEFAULT_STORAGE
from recorder.config_schema import report
from recorder.errors import RecorderError

from . import create_app
from .config import DEFAULT_HOST, DEFAULT_PORT, Config, check_file, flask_overrides, settings_from
from .extensions import db
from .live.stream import end_live_streams
from .models import ROLE_ADMIN, ROLE_VIEWER, User, password_problem, username_problem
from .proxy import TrustedProxies
from .server import ServerError, create_server, tls_context

# systemd (Type=notify): READY=1 once the port is bound, STOPPING=1 on SIGTERM; a no-op elsewhere
systemd = Notifier()
logger = logging.getLogger("webapp")

COMMANDS = ("serve", "create-user", "ensure-admin", "check-config")
PASSWORD_ENV = "NVR_PASSWORD"
FIRST_ADMIN = "admin"
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
SERVE_THREADS = 32  # worker threads: requests, and one per live viewer while it watches


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 1."""


def parser() -> argparse.ArgumentParser:
    """Build the argument parser (subcommands serve, create-user, ensure-admin)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="the hub's TOML config file (its [webapp] "
                        "table: host, port, users_db, trusted_proxies, public_metrics)")
    common.add_argument("--db", help=f"catalog database URL (default {DEFAULT_DB})")
    common.add_argument("--storage", help=f"recordings folder (default {DEFAULT_STORAGE})")
    common.add_argument("--users-db", help="users database URL (default: users.db beside a "
                        "SQLite catalog, else sqlite:///data/users.db)")
    common.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    listen.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")

    p = argparse.ArgumentParser(prog="python -m webapp", description="NVR web app: search, "
                                "play and export footage; live view; users and cameras.")
    sub = p.add_subparsers(dest="command", metavar="{serve,create-user,ensure-admin,check-config}")
    serve = sub.add_parser("serve", parents=[common, listen], help="serve the web app (default)")
    # Each live viewer holds a thread for as long as it watches (docs/design/live.md).
    serve.add_argument("--threads", type=int, default=SERVE_THREADS,
                       help=f"worker threads (default {SERVE_THREADS}; a live viewer holds one)")
    serve.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain) file")
    serve.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    serve.add_argument("--trusted-proxies", help="comma-separated addresses or networks of "
                       "reverse proxies whose X-Forwarded-For/-Proto are believed")
    serve.add_argument(camera_urls.ALLOW_FLAG, action="store_true", default=None,
                       help="let admins add pull cameras on loopback or link-local addresses "
                       f"(the hub's {camera_urls.ALLOW_KEY}; off by default)")
    serve.add_argument("--ensure-admin", action="store_true", help="if there are no users yet, "
                       "create an admin with a random password and print it once")
    create = sub.add_parser("create-user", parents=[common], help="create a user; the password "
                            f"is read from stdin, or from ${PASSWORD_ENV} when set")
    create.add_argument("name", help="username")
    create.add_argument("--admin", action="store_true", help="make the user an admin")
    sub.add_parser("ensure-admin", parents=[common, listen], help="create the first admin if "
                   "there are no users, and print the URL (and that login, once)")
    check = sub.add_parser("check-config", help="check a config file (every key, and the "
                           "NVR_* environment) and exit 0 if it is fine, 1 with its problems")
    check.add_argument("file", type=Path, help="the config file, e.g. /etc/nvr/nvr.toml")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; without a subcommand, ``serve`` is meant."""
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one command of the web app; return the process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "check-config":
        return check_config(args.file)
    level = args.log_level or ("INFO" if args.command == "serve" else "WARNING")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # camera credentials never reach the log, whoever logs them
    try:
        settings = settings_from(args.config, {
            "db": args.db, "storage": args.storage, "users_db": args.users_db,
            "host": getattr(args, "host", None), "port": getattr(args, "port", None),
            **{key: getattr(args, key, None)
               for key in ("tls_cert", "tls_key", "trusted_proxies")},
            camera_urls.ALLOW_KEY: getattr(args, "allow_local_camera_urls", None)})
        if args.command == "create-user":
            return create_user(args.name, args.admin, settings)
        if args.command == "ensure-admin":
            app = _make_app(settings)
            print_banner(settings, ensure_first_admin(app))
            return 0
        configure_ffmpeg(settings["ffmpeg"])  # the hub's file's key ($NVR_FFMPEG still wins)
        return serve(settings, threads=args.threads, ensure_admin=args.ensure_admin)
    except (RecorderError, CliError, ServerError) as exc:
        for line in str(exc).splitlines():  # a config error: one line per problem
            print(f"error: {line}", file=sys.stderr)
        return 2 if isinstance(exc, RecorderError) else 1


def check_config(path: Path) -> int:
    """Check a config file as the web app reads it; print "FILE: ok" or one line per problem."""
    try:
        problems = check_file(path)
    except RecorderError as exc:  # the file cannot be read or is not TOML
        problems = str(exc).splitlines()
    return report(path, problems)


def _make_app(settings: dict[str, Any]) -> Flask:
    return create_app(flask_overrides(settings))


def read_password() -> str:
    """Return the new user's password: $NVR_PASSWORD, a prompt on a terminal, else stdin's line."""
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat the password: "):
            raise CliError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def create_user(name: str, admin: bool, settings: dict[str, Any]) -> int:
    """Create user ``name`` (admin or viewer) with the password from stdin or $NVR_PASSWORD."""
    problem = username_problem(name)
    if problem:
        raise CliError(problem)
    password = read_password()
    problem = password_problem(password, Config.PASSWORD_MIN_LENGTH)
    if problem:
        raise CliError(problem)
    app = _make_app(settings)
    with app.app_context():
        if db.session.scalar(select(User.id).where(User.username == name)) is not None:
            raise CliError(f"user {name!r} already exists (reset its password in the web app)")
        user = User(username=name, role=ROLE_ADMIN if admin else ROLE_VIEWER,
                    created_at=app.config["CLOCK"]())
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
    print(f"created {'admin' if admin else 'viewer'} {name!r}")
    return 0


def ensure_first_admin(app: Flask) -> str | None:
    """Create the admin account if there are no users at all; return its password, else None."""
    with app.app_context():
        if db.session.scalar(select(func.count()).select_from(User)):
            return None
        password = secrets.token_urlsafe(12)
        user = User(username=FIRST_ADMIN, role=ROLE_ADMIN, created_at=app.config["CLOCK"]())
        user.set_password(password)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            # Another web app started at the same moment made the admin (and printed it).
            db.session.rollback()
            return None
    logger.info("no users yet: created the admin account %r", FIRST_ADMIN)
    return password


def display_url(host: str, port: int, scheme: str = "http") -> str:
    """Return the URL to open the web app at, for a listening host and port."""
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host.strip('[]')}]"
    return f"{scheme}://{host}:{port}/"


def scheme_of(settings: dict[str, Any]) -> str:
    """Return "https" when the settings name a TLS certificate, else "http"."""
    return "https" if settings.get("tls_cert") else "http"


def print_banner(settings: dict[str, Any], first_password: str | None) -> None:
    """Print where the web app is and, on the very first start only, the admin login."""
    host, port, scheme = str(settings["host"]), int(settings["port"]), scheme_of(settings)
    lines = [f"NVR web app: {display_url(host, port, scheme)}"]
    if host in WILDCARD_HOSTS:
        lines.append(f"  (listening on all addresses: from another device open "
                     f"{scheme}://{socket.gethostname()}:{port}/ or this machine's IP address)")
    if first_password is not None:
        # Printed (not logged) once: the operator needs it, the logs must never hold it.
        lines += ["First start: created the admin account.",
                  f"  username: {FIRST_ADMIN}",
                  f"  password: {first_password}",
                  "  It is shown only this once: log in and set a new one under Users."]
    print("\n".join(lines), flush=True)


def serve(settings: dict[str, Any], threads: int = SERVE_THREADS,
          ensure_admin: bool = False) -> int:
    """Serve the web app (HTTP, or HTTPS with tls_cert/tls_key) until SIGTERM or SIGINT."""
    tls = None
    if settings.get("tls_cert"):
        tls = tls_context(Path(settings["tls_cert"]), Path(settings["tls_key"]))
    app = _make_app(settings)
    try:
        server = create_server(app, host=settings["host"], port=settings["port"], threads=threads,
                               tls=tls, exempt=TrustedProxies(settings["trusted_proxies"]))
    except OSError as exc:  # e.g. the port is taken
        logger.error("cannot listen on %s:%s: %s", settings["host"], settings["port"], exc.strerror)
        return 1
    port = int(getattr(server, "effective_port", settings["port"]))
    # Waitress stops on SystemExit/KeyboardInterrupt raised inside its loop (as for Ctrl-C):
    # raising from the handler is its way of hearing SIGTERM, with no thread left running.
    signal.signal(signal.SIGTERM, functools.partial(_stop_serving, app))
    first_password = ensure_first_admin(app) if ensure_admin else None
    if ensure_admin:
        print_banner({**settings, "port": port}, first_password)
    logger.info("web app listening on %s://%s:%d (catalog %s)", scheme_of(settings),
                settings["host"], port, redacted(str(settings["db"])))
    log_ffmpeg_in_background(logger)  # exports and thumbnails run it
    systemd.ready(f"serving on port {port}")
    try:
        server.run()
    finally:
        systemd.stopping()
    logger.info("web app stopped")
    return 0


def _stop_serving(app: Flask, _signum: int, _frame: object) -> None:
    systemd.stopping()
    # A live stream's thread waits for its next frame: ended now, waitress need not wait for it.
    end_live_streams(app)
    raise SystemExit(0)
