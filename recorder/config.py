"""Hub configuration: defaults, a strict TOML file, and command-line overrides."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nvrlib.names import InvalidName, validate_camera_name

from .errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:1025"
DEFAULT_STORAGE = "data/recordings"
DEFAULT_DB = "sqlite:///data/nvr.db"


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """One camera the hub knows in advance: a pushed edge camera or a pulled RTSP camera."""

    name: str
    location: str = ""
    url: str | None = None  # set for cameras the hub pulls (rtsp://...)
    token: str | None = None  # per-camera ingest token for pushed cameras
    enabled: bool = True
    segment_seconds: float | None = None

    @property
    def is_pull(self) -> bool:
        """Tell whether the hub pulls this camera (as opposed to an edge pushing it)."""
        return self.url is not None


@dataclasses.dataclass(frozen=True)
class HubConfig:
    """Everything the hub needs to run."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 1025
    storage: Path = Path(DEFAULT_STORAGE)
    db_url: str = DEFAULT_DB
    segment_seconds: float = 10.0
    ingest_token: str | None = None
    allow_new_cameras: bool = True
    require_approval: bool = False
    live_view: bool = True  # a rolling 1-s HLS per camera for the web app's live view
    stall_timeout: float = 15.0
    max_streams: int = 256
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    fail_after: int = 10
    failed_retry_seconds: float = 300.0
    cameras: tuple[CameraConfig, ...] = ()

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


_TOP_KEYS = {
    "listen", "storage", "db", "segment_seconds", "ingest_token", "ingest_token_file",
    "allow_new_cameras", "require_approval", "live_view", "stall_timeout", "max_streams", "backoff_initial", "backoff_max",
    "fail_after", "failed_retry_seconds", "cameras",
}
_CAMERA_KEYS = {"name", "location", "url", "token", "enabled", "segment_seconds"}
# Sections other parts of the system read from the same file (web app, alerts, retention).
_FOREIGN_SECTIONS = {"webapp", "alerts", "retention"}


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


def _read_token_file(path: str) -> str:
    try:
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
    segment_seconds = table.get("segment_seconds")
    if segment_seconds is not None and not 1 <= float(segment_seconds) <= 3600:
        raise ConfigError(f"cameras[{index}].segment_seconds: must be between 1 and 3600")
    return CameraConfig(
        name=name,
        location=str(table.get("location", "")),
        url=url,
        token=table.get("token"),
        enabled=bool(table.get("enabled", True)),
        segment_seconds=float(segment_seconds) if segment_seconds is not None else None,
    )


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


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> HubConfig:
    """Merge file values and command-line overrides (which win) into a HubConfig."""
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
        kwargs["db_url"] = str(values["db"])
    if values.get("ingest_token_file"):
        kwargs["ingest_token"] = _read_token_file(str(values["ingest_token_file"]))
    if values.get("ingest_token"):
        kwargs["ingest_token"] = str(values["ingest_token"])
    for key in ("segment_seconds", "stall_timeout", "backoff_initial", "backoff_max",
                "failed_retry_seconds"):
        if key in values:
            kwargs[key] = float(values[key])
    for key in ("max_streams", "fail_after"):
        if key in values:
            kwargs[key] = int(values[key])
    for key in ("allow_new_cameras", "require_approval", "live_view"):
        if key in values:
            kwargs[key] = bool(values[key])
    cameras = tuple(_camera_from_table(i, t) for i, t in enumerate(values.get("cameras", [])))
    names = [c.name for c in cameras]
    if len(names) != len(set(names)):
        raise ConfigError("cameras: two cameras have the same name")
    kwargs["cameras"] = cameras
    config = HubConfig(**kwargs)
    if not 1 <= config.segment_seconds <= 3600:
        raise ConfigError("segment_seconds: must be between 1 and 3600")
    return config
