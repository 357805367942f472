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
from nvrlib.names import InvalidName, validate_camera_name
from nvrlib.private_files import tighten

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


_TOP_KEYS = {
    "listen", "storage", "db", "segment_seconds", "ingest_token", "ingest_token_file",
    "allow_new_cameras", "require_approval", "unknown_cameras", "tls_cert", "tls_key",
    "tls_listen", "live_view", "ffmpeg", "allow_local_camera_urls", "stall_timeout", "max_streams", "backoff_initial", "backoff_max",
    "head_timeout", "max_connections", "max_connections_per_source", "fd_reserve",
    "min_video_bytes", "new_cameras_per_source", "new_camera_window",
    "fail_after", "failed_retry_seconds", "stall_margin", "health_interval",
    "disk_check_interval", "catalog_check_interval", "cameras", "alerts", "retention",
}
_CAMERA_KEYS = {"name", "location", "url", "token", "enabled", "segment_seconds",
                "retention_days", "retention_gb"}
_ALERT_KEYS = {"sendgrid_api_key", "sendgrid_api_key_file", "sendgrid_api_host", "email_to",
               "email_from", "subject_prefix", "send_timeout", "retry_initial", "retry_max",
               "give_up_after", "debounce_window", "debounce_burst", "disk_low_percent"}
_RETENTION_KEYS = {"days", "max_gb", "max_percent", "min_free_gb", "min_free_percent", "interval"}
# Sections other parts of the system read from the same file (the web app).
_FOREIGN_SECTIONS = {"webapp"}
# The environment overrides the [alerts] section (secrets stay out of the file).
ALERT_ENVIRONMENT = {"SENDGRID_API_KEY": "sendgrid_api_key",
                     "SENDGRID_API_HOST": "sendgrid_api_host",
                     "ALERT_EMAIL_TO": "email_to", "ALERT_EMAIL_FROM": "email_from"}


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


def database_url(value: Any) -> str:
    """Check a catalog database URL (``sqlite:///...``, ``postgresql+psycopg://...``)."""
    if not isinstance(value, str):
        raise ConfigError(f"db: expected a database URL string, got {value!r}")
    try:
        url = make_url(value)
    except ArgumentError:
        # the value is not echoed: it may hold a password
        raise ConfigError("db: not a database URL (e.g. sqlite:///data/nvr.db or "
                          "postgresql+psycopg://user@host/nvr)") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"db: {url.get_backend_name()!r} is not supported (sqlite or postgresql)")
    return value


def ffmpeg_path(value: Any) -> str:
    """Check the ``ffmpeg`` key: an absolute path to an executable file (e.g. /usr/bin/ffmpeg)."""
    if not isinstance(value, str) or not is_executable_file(value):
        raise ConfigError(f"ffmpeg: expected the absolute path of an executable file "
                          f"(e.g. /usr/bin/ffmpeg), got {value!r}")
    return value


def unknown_camera_policy(values: Mapping[str, Any]) -> str:
    """Read ``unknown_cameras``, or turn the older allow_new_cameras / require_approval into it."""
    legacy = {key for key in ("allow_new_cameras", "require_approval") if key in values}
    if "unknown_cameras" in values:
        if legacy:
            raise ConfigError(f"config: {sorted(legacy)[0]} is replaced by unknown_cameras; "
                              "keep only unknown_cameras")
        policy = str(values["unknown_cameras"])
        if policy not in UNKNOWN_CAMERA_POLICIES:
            raise ConfigError(f"unknown_cameras: expected one of {', '.join(UNKNOWN_CAMERA_POLICIES)}"
                              f", got {policy!r}")
        return policy
    if legacy:
        logger.warning("config: %s is deprecated: use unknown_cameras = \"record\", "
                       "\"approve\" or \"refuse\"", " and ".join(sorted(legacy)))
    if not bool(values.get("allow_new_cameras", True)):
        return "refuse"
    return "approve" if bool(values.get("require_approval", False)) else "record"


def tls_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Read tls_cert, tls_key and tls_listen (both files or neither; the files must exist)."""
    cert, key = values.get("tls_cert"), values.get("tls_key")
    if bool(cert) != bool(key):
        raise ConfigError("tls_cert and tls_key: set both (the certificate and its private key)"
                          " or neither")
    if values.get("tls_listen") and not cert:
        raise ConfigError("tls_listen: needs tls_cert and tls_key")
    if not cert:
        return {}
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if not Path(str(path)).is_file():
            raise ConfigError(f"{name}: {path} is not a readable file")
    kwargs: dict[str, Any] = {"tls_cert": Path(str(cert)), "tls_key": Path(str(key))}
    if values.get("tls_listen"):
        kwargs["tls_listen"] = parse_listen(str(values["tls_listen"]))
    return kwargs


def _read_token_file(path: str) -> str:
    try:
        tighten(Path(path))  # whoever reads the token can push as any camera
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"ingest_token_file: cannot read {path}: {exc.strerror}") from None


def _camera_from_table(index: int, table: dict[str, Any]) -> CameraConfig:
    unknown = set(table) - _CAMERA_KEYS
    if unknown:
        raise ConfigError(f"cameras[{index}]: unknown key {sorted(unknown)[0]!r}")
    try:
        name = validate_camera_name(table.get("name", ""))
    except InvalidName as exc:
        raise ConfigError(f"cameras[{index}].name: {exc}") from None
    url = table.get("url")
    if url is not None and urlsplit(url).scheme.lower() not in ("rtsp", "rtsps"):
        raise ConfigError(f"cameras[{index}].url: only rtsp:// and rtsps:// URLs can be pulled")
    if url is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        # ffmpeg reads the URL from a one-line list (recorder/supervise/ffmpeg.py)
        raise ConfigError(f"cameras[{index}].url must not contain control characters")
    segment_seconds = table.get("segment_seconds")
    if segment_seconds is not None and not 1 <= float(segment_seconds) <= 3600:
        raise ConfigError(f"cameras[{index}].segment_seconds: must be between 1 and 3600")
    retention_days = _optional_positive(table, "retention_days", f"cameras[{index}]")
    retention_gb = _optional_positive(table, "retention_gb", f"cameras[{index}]")
    return CameraConfig(
        name=name,
        location=str(table.get("location", "")),
        url=url,
        token=table.get("token"),
        enabled=bool(table.get("enabled", True)),
        segment_seconds=float(segment_seconds) if segment_seconds is not None else None,
        retention_days=retention_days, retention_gb=retention_gb,
    )


def _optional_positive(table: Mapping[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}") from None
    if number < 0:
        raise ConfigError(f"{where}.{key}: must not be negative")
    return number or None  # 0 means "no limit"


def _number(table: Mapping[str, Any], key: str, where: str, low: float, high: float) -> float:
    try:
        number = float(table[key])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{key}: expected a number, got {table[key]!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{where}.{key}: must be between {low:g} and {high:g}")
    return number


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    addresses = tuple(str(item).strip() for item in items if str(item).strip())
    for address in addresses:
        if not valid_email(address):
            raise ConfigError(f"{where}: {address!r} is not an email address")
    return addresses


def valid_email(address: str) -> bool:
    """Tell whether ``address`` looks like one plain email address (no name, no list)."""
    local, at, domain = address.rpartition("@")
    return (bool(at and local and "." in domain.strip(".")) and len(address) <= 254
            and not any(c.isspace() or c in ",;<>\"()" for c in address))


def alerts_config(section: Mapping[str, Any], environ: Mapping[str, str]) -> AlertsConfig:
    """Build the alert settings from the ``[alerts]`` table, then the environment on top."""
    unknown = set(section) - _ALERT_KEYS
    if unknown:
        raise ConfigError(f"alerts: unknown key {sorted(unknown)[0]!r}")
    values = dict(section)
    if values.get("sendgrid_api_key_file"):
        path = str(values.pop("sendgrid_api_key_file"))
        try:
            values.setdefault("sendgrid_api_key", Path(path).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"alerts.sendgrid_api_key_file: cannot read {path}: {exc.strerror}") from None
    for variable, key in ALERT_ENVIRONMENT.items():
        if environ.get(variable, "").strip():
            values[key] = environ[variable].strip()
    kwargs: dict[str, Any] = {}
    if values.get("sendgrid_api_key"):
        kwargs["api_key"] = str(values["sendgrid_api_key"])
    if values.get("sendgrid_api_host"):
        host = str(values["sendgrid_api_host"]).rstrip("/")
        if urlsplit(host).scheme not in ("http", "https") or not urlsplit(host).netloc:
            raise ConfigError(f"alerts.sendgrid_api_host: expected an http(s):// URL, got {host!r}")
        kwargs["api_host"] = host
    if "email_to" in values:
        kwargs["email_to"] = _addresses(values["email_to"], "alerts.email_to")
    kwargs["email_to_from_environment"] = bool(environ.get("ALERT_EMAIL_TO", "").strip())
    if values.get("email_from"):
        (kwargs["email_from"],) = _addresses([values["email_from"]], "alerts.email_from")
    if "subject_prefix" in values:
        kwargs["subject_prefix"] = str(values["subject_prefix"])[:40]
    limits = {"send_timeout": (0.1, 300), "retry_initial": (0.01, 3600), "retry_max": (0.01, 86400),
              "give_up_after": (1, 30 * 86400), "debounce_window": (1, 86400),
              "disk_low_percent": (0, 100)}
    for key, (low, high) in limits.items():
        if key in values:
            kwargs[key] = _number(values, key, "alerts", low, high)
    if "debounce_burst" in values:
        kwargs["debounce_burst"] = int(_number(values, "debounce_burst", "alerts", 1, 1000))
    return AlertsConfig(**kwargs)


def retention_config(section: Mapping[str, Any]) -> RetentionConfig:
    """Build the retention settings from the ``[retention]`` table."""
    unknown = set(section) - _RETENTION_KEYS
    if unknown:
        raise ConfigError(f"retention: unknown key {sorted(unknown)[0]!r}")
    kwargs: dict[str, Any] = {}
    for key in ("days", "max_gb", "max_percent"):
        if key in section:
            kwargs[key] = _optional_positive(section, key, "retention")
    if kwargs.get("max_percent") is not None and kwargs["max_percent"] > 100:
        raise ConfigError("retention.max_percent: must be at most 100")
    if "min_free_gb" in section:
        kwargs["min_free_gb"] = _number(section, "min_free_gb", "retention", 0, 1e6)
    if "min_free_percent" in section:
        kwargs["min_free_percent"] = _number(section, "min_free_percent", "retention", 0, 50)
    if "interval" in section:
        kwargs["interval"] = _number(section, "interval", "retention", 0.5, 86400)
    return RetentionConfig(**kwargs)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the shared TOML config file, with errors that name the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None


def load_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file into the keyword arguments of HubConfig."""
    data = read_toml(path)
    hub = dict(data.get("hub", {}))
    hub.update({k: v for k, v in data.items() if k not in _FOREIGN_SECTIONS | {"hub"}})
    unknown = set(hub) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"config: unknown key {sorted(unknown)[0]!r} in {path}")
    return hub


# key: (low, high, type) of the ingest limits (docs/design/protocol.md, "Limits")
_INGEST_LIMITS: dict[str, tuple[float, float, type]] = {
    "head_timeout": (0.5, 300, float), "max_connections": (1, 1_000_000, int),
    "max_connections_per_source": (1, 1_000_000, int), "fd_reserve": (0, 1_000_000, int),
    "min_video_bytes": (0, 10**9, int), "new_cameras_per_source": (0, 100_000, int),
    "new_camera_window": (1, 30 * 86400, float),
}


def _ingest_limits(values: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, (low, high, kind) in _INGEST_LIMITS.items():
        if key in values:
            kwargs[key] = kind(_number(values, key, "config", low, high))
    return kwargs


def build_config(file_values: dict[str, Any], overrides: dict[str, Any],
                 environ: Mapping[str, str] | None = None) -> HubConfig:
    """Merge file values, command-line overrides (which win) and the environment into a HubConfig."""
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in overrides.items() if v is not None}
    if "ingest_token_file" in given:  # a token file named on the command line beats the file's token
        file_values = {k: v for k, v in file_values.items() if k != "ingest_token"}
    values = {**file_values, **given}
    kwargs: dict[str, Any] = {}
    if "listen" in values:
        kwargs["listen_host"], kwargs["listen_port"] = parse_listen(str(values["listen"]))
    if "storage" in values:
        kwargs["storage"] = Path(values["storage"])
    if "db" in values:
        kwargs["db_url"] = database_url(values["db"])
    if values.get("ffmpeg"):
        kwargs["ffmpeg"] = ffmpeg_path(values["ffmpeg"])
    if values.get("ingest_token_file"):
        kwargs["ingest_token"] = _read_token_file(str(values["ingest_token_file"]))
    if values.get("ingest_token"):
        kwargs["ingest_token"] = str(values["ingest_token"])
    for key in ("segment_seconds", "stall_timeout", "backoff_initial", "backoff_max",
                "failed_retry_seconds", "stall_margin", "health_interval", "disk_check_interval",
                "catalog_check_interval"):
        if key in values:
            kwargs[key] = float(values[key])
    for key in ("max_streams", "fail_after"):
        if key in values:
            kwargs[key] = int(values[key])
    for key in ("live_view", "allow_local_camera_urls"):
        if key in values:
            kwargs[key] = bool(values[key])
    kwargs["unknown_cameras"] = unknown_camera_policy(values)
    kwargs.update(tls_settings(values))
    kwargs.update(_ingest_limits(values))
    cameras = tuple(_camera_from_table(i, t) for i, t in enumerate(values.get("cameras", [])))
    names = [c.name for c in cameras]
    if len(names) != len(set(names)):
        raise ConfigError("cameras: two cameras have the same name")
    kwargs["cameras"] = cameras
    for section in ("alerts", "retention"):
        if not isinstance(values.get(section, {}), dict):
            raise ConfigError(f"config: [{section}] must be a table")
    kwargs["alerts"] = alerts_config(values.get("alerts", {}), environ)
    kwargs["retention"] = retention_config(values.get("retention", {}))
    config = HubConfig(**kwargs)
    if not 1 <= config.segment_seconds <= 3600:
        raise ConfigError("segment_seconds: must be between 1 and 3600")
    for key in ("health_interval", "disk_check_interval", "catalog_check_interval"):
        if not 0.1 <= getattr(config, key) <= 86400:
            raise ConfigError(f"{key}: must be between 0.1 and 86400 seconds")
    if config.stall_margin < 0:
        raise ConfigError("stall_margin: must not be negative")
    return config
