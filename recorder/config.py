"""Hub configuration: defaults, a strict TOML file, and command-line overrides."""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from nvrlib.ffmpeg_bin import is_executable_file
from nvrlib.names import DEFAULT_HUB, InvalidName, validate_camera_name, validate_hub_id
from nvrlib.private_files import tighten

from recorder import config_schema as schema
from recorder.config_schema import Invalid
from recorder.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:1025"
DEFAULT_STORAGE = "data/recordings"
DEFAULT_DB = "sqlite:///data/nvr.db"
# unknown_cameras: record (with a "new camera" alert), approve (held, refused with 403 until an
# admin approves it in the web app) or refuse (404; only config-file cameras, cameras the
# catalog knows, and names an admin made an ingest token for may push)
UNKNOWN_CAMERA_POLICIES = ("record", "approve", "refuse")


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """One camera the hub knows in advance: a pushed edge camera or a pulled RTSP camera."""

    name: str
    location: str = ""
    url: str | None = None  # set for cameras the hub pulls (rtsp://...)
    token: str | None = None  # per-camera ingest token for pushed cameras
    enabled: bool = True
    segment_seconds: float | None = None
    retention_days: float | None = None  # this camera's own limits (the tighter one wins)
    retention_gb: float | None = None
    # email this camera's motion (docs/guide/alerts.md); None: as the web app sets it
    # (cameras.motion_alerts). Set here, it wins over the web app's switch.
    motion_alerts: bool | None = None

    @property
    def is_pull(self) -> bool:
        """Tell whether the hub pulls this camera (as opposed to an edge pushing it)."""
        return self.url is not None


SENDGRID_API_HOST = "https://api.sendgrid.com"


@dataclasses.dataclass(frozen=True)
class AlertsConfig:
    """Email alerts: the ``[alerts]`` section, overridden by SENDGRID_* / ALERT_EMAIL_* variables."""

    api_key: str | None = dataclasses.field(default=None, repr=False)  # never in a log line
    api_host: str = SENDGRID_API_HOST
    email_to: tuple[str, ...] = ()
    # ALERT_EMAIL_TO was set: its addresses beat the ones an admin saves in the web app
    email_to_from_environment: bool = False
    email_from: str = "nvr@localhost"
    subject_prefix: str = "[NVR]"
    send_timeout: float = 10.0  # one SendGrid request; a hung API never holds more than this
    retry_initial: float = 5.0  # back-off between delivery attempts, doubling up to retry_max
    retry_max: float = 300.0
    give_up_after: float = 86400.0  # an alert still undelivered after this is marked failed
    debounce_window: float = 600.0  # per camera: at most debounce_burst emails per window,
    debounce_burst: int = 3  # the rest become one summary at the window's end
    disk_low_percent: float = 10.0  # alert when free space falls below this
    # the web app's address as people reach it (http://nvr.local:8080): motion alerts link to
    # the moment to play; None: no link
    web_url: str | None = None


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    """How long footage is kept: the ``[retention]`` section (per camera: [[cameras]] keys)."""

    days: float | None = 30.0  # None or 0: no age limit
    max_gb: float | None = None  # a size budget for all footage ...
    max_percent: float | None = None  # ... or as a percentage of the filesystem's size
    min_free_gb: float = 1.0  # the safety margin: below max(min_free_gb, min_free_percent)
    min_free_percent: float = 5.0  # of free space, the oldest footage goes regardless
    interval: float = 60.0  # seconds between retention passes (the disk is checked more often)


@dataclasses.dataclass(frozen=True)
class HubConfig:
    """Everything the hub needs to run."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 1025
    # this hub's id in a catalog several hubs share (docs/guide/several-hubs.md); fixed once
    # the hub has recorded, because its cameras and footage are filed under it
    hub_id: str = DEFAULT_HUB
    storage: Path = Path(DEFAULT_STORAGE)
    db_url: str = DEFAULT_DB
    segment_seconds: float = 10.0
    ingest_token: str | None = None
    # what a camera name the catalog does not know gets (UNKNOWN_CAMERA_POLICIES)
    unknown_cameras: str = "record"
    # TLS on ingest (docs/design/protocol.md, "TLS"): with a certificate and key, the ingest
    # port speaks only TLS, unless tls_listen names a second port for it (then both serve)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_listen: tuple[str, int] | None = None
    live_view: bool = True  # a rolling 1-s HLS per camera for the web app's live view
    # motion for cameras without our edge, from the keyframes of each finished segment
    # (recorder/supervise/keyframe_motion.py); each camera's motion_enabled still applies
    hub_motion: bool = True
    # the ffmpeg the hub and the web app run (nvrlib/ffmpeg_bin.py); None: the imageio-ffmpeg
    # wheel's pinned build. $NVR_FFMPEG beats it.
    ffmpeg: str | None = None
    # Pull cameras on loopback or link-local addresses (nvrlib.camera_urls): off, so that an
    # admin cannot probe the hub's own ports through a camera URL.
    allow_local_camera_urls: bool = False
    stall_timeout: float = 15.0
    max_streams: int = 256
    # ingest limits (docs/design/protocol.md, "Limits")
    head_timeout: float = 10.0  # the whole request head must arrive within this
    max_connections: int = 1024  # open ingest connections in total
    max_connections_per_source: int = 32  # ... and per source address
    fd_reserve: int = 256  # descriptors kept free for recording; new connections never use them
    min_video_bytes: int = 2048  # video payload per stall_timeout below which a stream is stalled
    new_cameras_per_source: int = 3  # camera names the catalog does not know yet, per source ...
    new_camera_window: float = 600.0  # ... per this many seconds; more get 429
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    fail_after: int = 10
    failed_retry_seconds: float = 300.0
    stall_margin: float = 10.0  # a stream with no new segment for 2 x segment + this is stalled
    health_interval: float = 2.0  # seconds between stream health checks
    disk_check_interval: float = 10.0
    catalog_check_interval: float = 900.0
    alerts: AlertsConfig = AlertsConfig()
    retention: RetentionConfig = RetentionConfig()
    cameras: tuple[CameraConfig, ...] = ()

    @property
    def allow_new_cameras(self) -> bool:
        """Tell whether a camera the catalog does not know may push at all."""
        return self.unknown_cameras != "refuse"

    @property
    def require_approval(self) -> bool:
        """Tell whether a new camera waits for an admin's approval before it is recorded."""
        return self.unknown_cameras == "approve"

    @property
    def tls(self) -> bool:
        """Tell whether ingest over TLS is configured."""
        return self.tls_cert is not None

    def camera(self, name: str) -> CameraConfig | None:
        """Return the configured camera of that name, if any."""
        for cam in self.cameras:
            if cam.name == name:
                return cam
        return None

    def segment_seconds_for(self, name: str) -> float:
        """Return the segment length of a camera (its own setting or the hub's)."""
        cam = self.camera(name)
        if cam is not None and cam.segment_seconds:
            return cam.segment_seconds
        return self.segment_seconds

    def stall_seconds_for(self, name: str) -> float:
        """Return how long a camera may go without a new segment before it counts as stalled."""
        return 2 * self.segment_seconds_for(name) + self.stall_margin


def parse_listen(value: str) -> tuple[str, int]:
    """Split 'host:port' (or ':port', or '[v6]:port') into a host and a port."""
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ConfigError(f"listen: expected HOST:PORT, got {value!r}")
    try:
        port_number = int(port)
    except ValueError:
        raise ConfigError(f"listen: port {port!r} is not a number") from None
    if not 0 <= port_number <= 65535:
        raise ConfigError(f"listen: port {port_number} is out of range")
    return (host.strip("[]") or "0.0.0.0"), port_number


def catalog_url(value: Any) -> str:
    """Check a catalog database URL (``sqlite:///...``, ``postgresql+psycopg://...``)."""
    if not isinstance(value, str):
        raise Invalid("expected a database URL string")
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise Invalid("not a database URL (e.g. sqlite:///data/nvr.db or "
                      "postgresql+psycopg://user@host/nvr)") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise Invalid(f"{url.get_backend_name()!r} is not supported (sqlite or postgresql)")
    return value


def database_url(value: Any) -> str:
    """Check a catalog database URL, raising ConfigError that never shows it (a password)."""
    try:
        return catalog_url(value)
    except Invalid as exc:
        raise ConfigError(f"db: {exc}") from None


def camera_name(value: Any) -> str:
    """Check a camera name against the allowlist every part of the system uses."""
    try:
        return validate_camera_name(value if isinstance(value, str) else "")
    except InvalidName as exc:
        raise Invalid(str(exc)) from None


def pull_url(value: Any) -> str:
    """Check the URL of a camera the hub pulls: rtsp:// or rtsps://, one line."""
    if not isinstance(value, str) or urlsplit(value).scheme.lower() not in ("rtsp", "rtsps"):
        raise Invalid("only rtsp:// and rtsps:// URLs can be pulled")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        # ffmpeg reads the URL from a one-line list (recorder/supervise/ffmpeg.py)
        raise Invalid("must not contain control characters")
    return value


def valid_email(address: str) -> bool:
    """Tell whether ``address`` looks like one plain email address (no name, no list)."""
    local, at, domain = address.rpartition("@")
    return (bool(at and local and "." in domain.strip(".")) and len(address) <= 254
            and not any(c.isspace() or c in ",;<>\"()" for c in address))


def email_addresses(value: Any) -> tuple[str, ...]:
    """Check a list of email addresses (or one comma-separated string of them)."""
    addresses = schema.string_list(value)
    bad = [address for address in addresses if not valid_email(address)]
    if bad:
        raise Invalid(f"expected email addresses (name@example.com); {bad[0]!r} is not one")
    return tuple(addresses)


def email_address(value: Any) -> str:
    """Check one email address."""
    if not isinstance(value, str) or not valid_email(value.strip()):
        raise Invalid("expected one email address (name@example.com)")
    return value.strip()


def http_url(value: Any) -> str:
    """Check an http(s):// base URL (the SendGrid API host); returned without a final slash."""
    host = value.rstrip("/") if isinstance(value, str) else ""
    if urlsplit(host).scheme not in ("http", "https") or not urlsplit(host).netloc:
        raise Invalid("expected an http(s):// URL")
    return host


def _listen(value: Any) -> tuple[str, int]:
    if not isinstance(value, str):
        raise Invalid("expected \"HOST:PORT\" (a string)")
    try:
        return parse_listen(value)
    except ConfigError as exc:
        raise Invalid(str(exc).removeprefix("listen: ") + " (expected HOST:PORT, port 0-65535)") \
            from None


def _secret(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("expected a string")
    return value.strip()


Key, Table, TableList = schema.Key, schema.Table, schema.TableList
number, whole, limit = schema.number, schema.whole, schema.limit
DAY = 86400.0

CAMERA_SCHEMA: schema.Schema = {
    "name": Key(camera_name), "location": Key(schema.text), "url": Key(pull_url, secret=True),
    "token": Key(schema.nonempty, secret=True), "enabled": Key(schema.boolean),
    "segment_seconds": Key(number(1, 3600)), "retention_days": Key(limit(100 * 365)),
    "retention_gb": Key(limit(1e9)), "motion_alerts": Key(schema.boolean),
}
ALERTS_SCHEMA: schema.Schema = {
    "sendgrid_api_key": Key(_secret, secret=True), "sendgrid_api_key_file": Key(schema.path),
    "sendgrid_api_host": Key(http_url), "email_to": Key(email_addresses),
    "email_from": Key(email_address), "subject_prefix": Key(schema.text),
    "send_timeout": Key(number(0.1, 300)), "retry_initial": Key(number(0.01, 3600)),
    "retry_max": Key(number(0.01, DAY)), "give_up_after": Key(number(1, 30 * DAY)),
    "debounce_window": Key(number(1, DAY)), "debounce_burst": Key(whole(1, 1000)),
    "disk_low_percent": Key(number(0, 100)), "web_url": Key(http_url),
}
RETENTION_SCHEMA: schema.Schema = {
    "days": Key(limit(100 * 365)), "max_gb": Key(limit(1e9)), "max_percent": Key(limit(100)),
    "min_free_gb": Key(number(0, 1e6)), "min_free_percent": Key(number(0, 50)),
    "interval": Key(number(0.5, DAY)),
}
# The web app's own table of the shared file (webapp/config.py reads it; the hub checks it too).
WEBAPP_SCHEMA: schema.Schema = {
    "host": Key(schema.text), "port": Key(whole(0, 65535)), "users_db": Key(catalog_url, secret=True),
    "trusted_proxies": Key(schema.string_list), "public_metrics": Key(schema.boolean),
    # face sign-in, a second step after the password that users may opt into (faces.md 5)
    "face_signin": Key(schema.boolean),
    "tls_cert": Key(schema.path), "tls_key": Key(schema.path),
    "hsts_max_age": Key(whole(0, 10 * 365 * 86400)),
    # other hubs' storage folders as the web app reaches them (webapp/hub_storage.py)
    "storage_mounts": Key(schema.string_list),
}
def ffmpeg_path(value: Any) -> str:
    """Check the ``ffmpeg`` key: an absolute path to an executable file (e.g. /usr/bin/ffmpeg)."""
    if not isinstance(value, str) or not is_executable_file(value):
        raise schema.Invalid("expected the absolute path of an executable file (e.g. "
                             "/usr/bin/ffmpeg)")
    return value


def hub_id(value: Any) -> str:
    """Check the ``hub_id`` key."""
    try:
        return validate_hub_id(value)
    except InvalidName as exc:
        raise schema.Invalid(str(exc)) from None


HUB_SCHEMA: schema.Schema = {
    "hub_id": Key(hub_id), "listen": Key(_listen), "storage": Key(schema.path), "db": Key(catalog_url, secret=True),
    "segment_seconds": Key(number(1, 3600)),
    "ingest_token": Key(schema.nonempty, secret=True), "ingest_token_file": Key(schema.path),
    # allow_new_cameras and require_approval: the older spelling of unknown_cameras
    "allow_new_cameras": Key(schema.boolean), "require_approval": Key(schema.boolean),
    "unknown_cameras": Key(schema.choice(*UNKNOWN_CAMERA_POLICIES)),
    "tls_cert": Key(schema.path), "tls_key": Key(schema.path), "tls_listen": Key(_listen),
    "live_view": Key(schema.boolean), "allow_local_camera_urls": Key(schema.boolean),
    "hub_motion": Key(schema.boolean),
    "ffmpeg": Key(ffmpeg_path),  # the hub's and the web app's (nvrlib/ffmpeg_bin.py)
    "stall_timeout": Key(number(0.1, DAY)), "max_streams": Key(whole(1, 100_000)),
    "backoff_initial": Key(number(0.01, 3600)), "backoff_max": Key(number(0.01, DAY)),
    "fail_after": Key(whole(1, 1_000_000)), "failed_retry_seconds": Key(number(0.1, 30 * DAY)),
    "stall_margin": Key(number(0, DAY)), "health_interval": Key(number(0.1, DAY)),
    "disk_check_interval": Key(number(0.1, DAY)), "catalog_check_interval": Key(number(0.1, DAY)),
    # ingest limits (docs/design/protocol.md, "Limits")
    "head_timeout": Key(number(0.5, 300)), "max_connections": Key(whole(1, 1_000_000)),
    "max_connections_per_source": Key(whole(1, 1_000_000)), "fd_reserve": Key(whole(0, 1_000_000)),
    "min_video_bytes": Key(whole(0, 10**9)), "new_cameras_per_source": Key(whole(0, 100_000)),
    "new_camera_window": Key(number(1, 30 * DAY)),
    "cameras": TableList(CAMERA_SCHEMA), "alerts": Table(ALERTS_SCHEMA),
    "retention": Table(RETENTION_SCHEMA), "webapp": Table(WEBAPP_SCHEMA),
}
# HubConfig fields that take a checked top-level value as it is.
_PLAIN_KEYS = ("hub_id", "storage", "segment_seconds", "live_view", "hub_motion",
               "allow_local_camera_urls", "ffmpeg",
               "stall_timeout", "max_streams", "backoff_initial", "backoff_max", "fail_after",
               "failed_retry_seconds", "stall_margin", "health_interval", "disk_check_interval",
               "catalog_check_interval", "head_timeout", "max_connections",
               "max_connections_per_source", "fd_reserve", "min_video_bytes",
               "new_cameras_per_source", "new_camera_window")

# The environment overrides the [alerts] section (secrets stay out of the file).
ALERT_ENVIRONMENT = {"SENDGRID_API_KEY": "sendgrid_api_key",
                     "SENDGRID_API_HOST": "sendgrid_api_host",
                     "ALERT_EMAIL_TO": "email_to", "ALERT_EMAIL_FROM": "email_from"}
# ... and these top-level secrets (a command-line flag still wins over them).
HUB_ENVIRONMENT = {"NVR_DB_URL": "db", "NVR_INGEST_TOKEN": "ingest_token"}


def unknown_camera_policy(values: Mapping[str, Any], problems: schema.Problems) -> str:
    """Read ``unknown_cameras``, or turn the older allow_new_cameras / require_approval into it."""
    legacy = sorted(key for key in ("allow_new_cameras", "require_approval") if key in values)
    if "unknown_cameras" in values:
        if legacy:
            problems.add(f"{legacy[0]}: replaced by unknown_cameras; keep only unknown_cameras")
        return str(values["unknown_cameras"])
    if legacy:
        logger.warning("config: %s is deprecated: use unknown_cameras = \"record\", "
                       "\"approve\" or \"refuse\"", " and ".join(legacy))
    if not values.get("allow_new_cameras", True):
        return "refuse"
    return "approve" if values.get("require_approval", False) else "record"


def tls_settings(values: Mapping[str, Any], problems: schema.Problems) -> dict[str, Any]:
    """Read tls_cert, tls_key and tls_listen (both files or neither; the files must exist)."""
    cert, key = values.get("tls_cert"), values.get("tls_key")
    if (cert is None) != (key is None):
        problems.add("tls_cert and tls_key: set both (the certificate and its private key)"
                     " or neither")
        return {}
    if values.get("tls_listen") and cert is None:
        problems.add("tls_listen: needs tls_cert and tls_key")
    if cert is None:
        return {}
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if not path.is_file():
            problems.add(f"{name}: {path} is not a readable file")
    kwargs: dict[str, Any] = {"tls_cert": cert, "tls_key": key}
    if values.get("tls_listen"):
        kwargs["tls_listen"] = values["tls_listen"]
    return kwargs


def _read_secret_file(name: str, path: Path, problems: schema.Problems) -> str | None:
    try:
        tighten(path)  # whoever reads the secret can push as any camera / send as the hub
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.add(f"{name}: cannot read {path}: {exc.strerror}")
        return None


def _cameras(tables: list[dict[str, Any]], problems: schema.Problems) -> tuple[CameraConfig, ...]:
    cameras = []
    for index, table in enumerate(tables):
        if "name" not in table:
            problems.add(f"cameras[{index}].name: missing (every camera needs a name)")
            continue
        cameras.append(CameraConfig(**{k: v for k, v in table.items() if k != "name"},
                                    name=table["name"]))
    names = [c.name for c in cameras]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.add(f"cameras: two cameras have the same name ({', '.join(duplicates)})")
    return tuple(cameras)


def _alerts(values: dict[str, Any], environ: Mapping[str, str],
            problems: schema.Problems) -> AlertsConfig:
    if "sendgrid_api_key_file" in values:
        key = _read_secret_file("alerts.sendgrid_api_key_file",
                                values.pop("sendgrid_api_key_file"), problems)
        if key is not None:
            values.setdefault("sendgrid_api_key", key)
    from_environment = schema.check_environment(environ, ALERT_ENVIRONMENT, ALERTS_SCHEMA, problems)
    values.update(from_environment)
    kwargs: dict[str, Any] = {"email_to_from_environment": "email_to" in from_environment}
    renamed = {"sendgrid_api_key": "api_key", "sendgrid_api_host": "api_host"}
    for key, value in values.items():
        if key == "sendgrid_api_key" and not value:
            continue  # an empty key: no alerts by email, as before
        kwargs[renamed.get(key, key)] = value
    if "subject_prefix" in kwargs:
        kwargs["subject_prefix"] = kwargs["subject_prefix"][:40]
    return AlertsConfig(**kwargs)


def alerts_config(section: Mapping[str, Any], environ: Mapping[str, str]) -> AlertsConfig:
    """Build the alert settings from the ``[alerts]`` table, then the environment on top."""
    problems = schema.Problems()
    values = schema.check_table(section, ALERTS_SCHEMA, "alerts", problems)
    config = _alerts(values, environ, problems)
    problems.raise_if_any()
    return config


def _retention(values: Mapping[str, Any]) -> RetentionConfig:
    return RetentionConfig(**values)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the shared TOML config file, with errors that name the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None


def load_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file into the raw values that `build_config` checks and merges.

    An optional ``[hub]`` table is read as the top level. Only the TOML syntax is checked here;
    `build_config` (or `check_values`) reports every bad key of the file at once.
    """
    data = read_toml(path)
    hub = data.get("hub", {})
    if not isinstance(hub, dict):
        raise ConfigError(f"config: [hub] in {path} must be a table")
    return {**hub, **{k: v for k, v in data.items() if k != "hub"}}


def check_values(values: Mapping[str, Any], problems: schema.Problems) -> dict[str, Any]:
    """Check every key of the file (all sections) without reading other files; return the good."""
    return schema.check_table(values, HUB_SCHEMA, "", problems)


def build_config(file_values: dict[str, Any], overrides: dict[str, Any],
                 environ: Mapping[str, str] | None = None) -> HubConfig:
    """Merge file values, the environment's secrets and command-line overrides into a HubConfig.

    Command-line flags win over the environment (HUB_ENVIRONMENT), which wins over the file.
    Every problem is reported at once: one ConfigError whose lines each name a key.
    """
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in overrides.items() if v is not None}
    problems = schema.Problems()
    from_environment = schema.check_environment(environ, HUB_ENVIRONMENT, HUB_SCHEMA, problems)
    if "ingest_token" in from_environment or "ingest_token_file" in given:
        # a token from the environment or a token file on the command line beats the file's
        file_values = {k: v for k, v in file_values.items()
                       if k not in ("ingest_token", "ingest_token_file")}
    if "ingest_token_file" in given:
        from_environment.pop("ingest_token", None)
    values = {**check_values(file_values, problems), **from_environment,
              **check_values(given, problems)}
    config = _hub_config(values, environ, problems)
    problems.raise_if_any()
    assert config is not None
    return config


def _hub_config(values: dict[str, Any], environ: Mapping[str, str],
                problems: schema.Problems) -> HubConfig | None:
    kwargs: dict[str, Any] = {k: values[k] for k in _PLAIN_KEYS if k in values}
    if "listen" in values:
        kwargs["listen_host"], kwargs["listen_port"] = values["listen"]
    if "db" in values:
        kwargs["db_url"] = values["db"]
    if "ingest_token" in values:
        kwargs["ingest_token"] = values["ingest_token"]
    elif "ingest_token_file" in values:
        kwargs["ingest_token"] = _read_secret_file("ingest_token_file",
                                                   values["ingest_token_file"], problems) or None
    kwargs["unknown_cameras"] = unknown_camera_policy(values, problems)
    kwargs.update(tls_settings(values, problems))
    kwargs["cameras"] = _cameras(values.get("cameras", []), problems)
    kwargs["alerts"] = _alerts(dict(values.get("alerts", {})), environ, problems)
    kwargs["retention"] = _retention(values.get("retention", {}))
    return None if problems else HubConfig(**kwargs)


def check_file(path: Path, environ: Mapping[str, str] | None = None,
               overrides: dict[str, Any] | None = None) -> list[str]:
    """Return every problem of the hub's config file ([] if it is fine), as `check-config` prints."""
    try:
        build_config(load_file(path), overrides or {}, environ)
    except ConfigError as exc:
        return str(exc).splitlines()
    return []
