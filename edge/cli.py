"""Command line: parse the flags into frozen config dataclasses, with clear errors."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import sys
from pathlib import Path

from nvrlib.names import InvalidName, validate_camera_name

from .config_file import expand_config_file
from .errors import ConfigError
from .sources import Source, default_name, parse_source
from .tls import TlsSettings, parse_pin

DEFAULT_PORT = 1025
DEFAULT_FPS = 15.0
DEFAULT_SIZE = "1280x720"
DEFAULT_BITRATE = "2M"
DEFAULT_SPOOL_SIZE = "4G"
DEFAULT_BACKFILL_RATE = "4M"
DEFAULT_MOTION_SENSITIVITY = 50
# --faces-* defaults and limits (docs/design/faces.md section 1, "Flags")
DEFAULT_FACES_RATE = 2.0
DEFAULT_FACES_MIN_SIZE = 60  # nvrlib.faces.DEFAULT_MIN_SIZE (not imported: no numpy here)
DEFAULT_FACES_DEBOUNCE = 30.0
FACES_RATE_LIMITS = (0.2, 5.0)
FACES_MIN_SIZE_LIMITS = (40, 1000)
FACES_MIN_DETECT_WIDTH = 320
FACES_DEBOUNCE_LIMITS = (5.0, 600.0)
MAX_LOCATION_LENGTH = 128  # protocol.md: X-NVR-Location is at most 128 printable chars

_SIZE_RE = re.compile(r"(\d+)[xX](\d+)")
_BITRATE_RE = re.compile(r"(\d+(?:\.\d+)?)([kKmM]?)")
_BYTES_RE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?")
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: anything else breaks the header


@dataclasses.dataclass(frozen=True)
class FacesConfig:
    """``--faces`` and its options: the same for every camera of an edge."""

    rate: float = DEFAULT_FACES_RATE  # frames a second to the worker at most, on motion
    min_size: int = DEFAULT_FACES_MIN_SIZE  # pixels
    detect_width: int = 0  # 0: detect on the full frame
    debounce: float = DEFAULT_FACES_DEBOUNCE  # seconds: one sighting per person per window
    overlay: bool = False  # burn a labelled box around each face into the video


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """One camera: where its frames come from, its name, and how to encode them."""

    name: str
    source: Source
    fps: float = DEFAULT_FPS
    width: int = 1280
    height: int = 720
    bitrate: int = 2_000_000
    loop: bool = True
    # None: no detector and no settings poll (library use); the command line gives True
    # (--motion, the default) or False (--no-motion; the hub's settings may still turn it on)
    motion: bool | None = None
    motion_sensitivity: int = DEFAULT_MOTION_SENSITIVITY
    faces: FacesConfig | None = None  # None: no face recognition (--no-faces, the default)


@dataclasses.dataclass(frozen=True)
class EdgeConfig:
    """Everything one edge process needs: the hub, the token and its cameras."""

    hub_host: str
    hub_port: int
    location: str
    streams: tuple[StreamConfig, ...]
    token: str | None = dataclasses.field(default=None, repr=False)
    log_level: str = "INFO"
    spool_dir: Path | None = None  # None: --no-spool
    spool_bytes: int = 4_000_000_000  # for all cameras together
    backfill_rate: int = 4_000_000  # bits per second, per camera
    tls: TlsSettings | None = None  # None: plain TCP to the hub
    protocol: int = 3  # the live stream's ingest protocol (edge.uplink.HubAddress)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m edge``."""
    p = argparse.ArgumentParser(
        prog="python -m edge",
        description="Capture cameras, burn in a time stamp, and push H.264 MPEG-TS to the hub.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML file whose keys are these flags "
                   "(spool_size = \"4G\", camera = [\"0\", \"test\"]); flags given here win")
    p.add_argument("--hub", required=True, help="hub host name or IP address")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="hub ingest port (1025)")
    p.add_argument("--location", default=None, help="where the cameras are (default: host name)")
    p.add_argument(
        "--camera", action="append", metavar="SRC",
        help="V4L2 index or /dev/videoN, video file, rtsp:// or http(s):// URL, or 'test'; "
        "repeat for several cameras (default: 0); a URL with a password belongs in --config, "
        "not here, where ps shows it",
    )
    p.add_argument("--name", action="append", help="camera name, paired in order with --camera")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frames per second (15)")
    p.add_argument("--size", default=DEFAULT_SIZE, help="frame size WxH (1280x720)")
    p.add_argument("--bitrate", default=DEFAULT_BITRATE, help="video bitrate, e.g. 2M or 800k")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--token", help="bearer token (visible in ps: prefer --token-file)")
    auth.add_argument("--token-file", type=Path, help="file holding the bearer token")
    tls = p.add_argument_group("TLS (the hub's tls_cert and tls_key)")
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS, trusting the system's certificate authorities")
    trust = tls.add_mutually_exclusive_group()
    trust.add_argument("--ca", type=Path, metavar="FILE",
                       help="trust only the CA certificate(s) in FILE (PEM); implies --tls")
    trust.add_argument("--pin", metavar="sha256:HEX",
                       help="trust only the hub certificate with this SHA-256 fingerprint "
                       "(e.g. a self-signed one); implies --tls")
    p.add_argument(
        "--protocol", type=int, choices=(2, 3), default=3,
        help="ingest protocol of the live stream: 3 hands the socket to the hub's ffmpeg, the "
        "cheapest for the hub (default; 2 over TLS, and with a hub that does not take 3); "
        "2 is chunked HTTP",
    )
    p.add_argument(
        "--loop", action=argparse.BooleanOptionalAction, default=True,
        help="replay video files from the start when they end (default), or end the stream",
    )
    p.add_argument(
        "--spool-dir", type=Path, default=None,
        help="where footage waits until the hub acknowledges it, one folder per camera "
        "(default: $XDG_STATE_HOME/nvr-edge/spool or ~/.local/state/nvr-edge/spool)",
    )
    p.add_argument(
        "--spool-size", default=DEFAULT_SPOOL_SIZE,
        help="the spool's size for all cameras together, e.g. 4G or 500M (4G); when full, "
        "the oldest footage is dropped",
    )
    p.add_argument(
        "--no-spool", action="store_true",
        help="keep nothing: footage is lost while the hub is unreachable",
    )
    p.add_argument(
        "--backfill-rate", default=DEFAULT_BACKFILL_RATE,
        help="upload rate of spooled footage per camera, in bits/s, e.g. 4M (4M)",
    )
    p.add_argument(
        "--motion", action=argparse.BooleanOptionalAction, default=True,
        help="detect motion and report events to the hub (default), or not; once an admin "
        "sets a camera's motion settings in the web app, the hub's settings win",
    )
    p.add_argument(
        "--motion-sensitivity", type=int, default=DEFAULT_MOTION_SENSITIVITY, metavar="N",
        help="motion sensitivity, 1 (only large, strong changes) to 100 (the slightest) (50)",
    )
    faces = p.add_argument_group("faces (needs requirements-edge-faces.txt)")
    faces.add_argument(
        "--faces", action=argparse.BooleanOptionalAction, default=False,
        help="find and recognise faces while there is motion, and report sightings to the hub "
        "(off by default)",
    )
    faces.add_argument("--faces-rate", type=float, default=DEFAULT_FACES_RATE, metavar="N",
                       help="frames a second checked for faces at most, 0.2-5 (2)")
    faces.add_argument("--faces-min-size", type=int, default=DEFAULT_FACES_MIN_SIZE,
                       metavar="PX", help="smallest face in pixels, 40-1000 (60)")
    faces.add_argument("--faces-detect-width", type=int, default=0, metavar="PX",
                       help="detect faces on a copy this wide, 320 up to the frame's width; "
                       "640 is ~4x cheaper but finds faces from ~160 px at 720p (0: full width)")
    faces.add_argument("--faces-debounce", type=float, default=DEFAULT_FACES_DEBOUNCE,
                       metavar="S", help="one sighting per person per this many seconds, "
                       "5-600 (30)")
    faces.add_argument(
        "--faces-overlay", action=argparse.BooleanOptionalAction, default=False,
        help="burn a labelled box around each face into the video (for good: off by default)",
    )
    p.add_argument(
        "--log-level", default="INFO", type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )
    return p


def parse_args(argv: list[str] | None = None) -> EdgeConfig:
    """Parse the command line into an EdgeConfig; exit with a usage message on a bad flag."""
    parser = build_parser()
    try:
        argv = expand_config_file(parser, sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        parser.error(str(exc))
    args = parser.parse_args(argv)
    try:
        return config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def config_from_args(args: argparse.Namespace) -> EdgeConfig:
    """Turn parsed arguments into an EdgeConfig, raising ConfigError on a bad value."""
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 1-65535")
    if not 0 < args.fps <= 120:
        raise ConfigError(f"--fps {args.fps:g}: must be above 0 and at most 120")
    location = check_location(args.location or socket.gethostname())
    width, height = parse_size(args.size)
    bitrate = parse_bitrate(args.bitrate)
    if not 1 <= args.motion_sensitivity <= 100:
        raise ConfigError(f"--motion-sensitivity {args.motion_sensitivity}: must be 1-100")
    faces = faces_config(args, width)
    streams = tuple(
        StreamConfig(name, source, args.fps, width, height, bitrate, args.loop, args.motion,
                     args.motion_sensitivity, faces)
        for name, source in pair_names(location, args.camera or ["0"], args.name or [])
    )
    return EdgeConfig(
        hub_host=args.hub, hub_port=args.port, location=location, streams=streams,
        token=read_token(args.token, args.token_file), log_level=args.log_level,
        spool_dir=None if args.no_spool else (args.spool_dir or default_spool_dir()),
        spool_bytes=parse_bytes(args.spool_size, "--spool-size"),
        backfill_rate=parse_bitrate(args.backfill_rate, "--backfill-rate", maximum=10**10),
        tls=tls_settings(args.tls, args.ca, args.pin), protocol=args.protocol,
    )


def faces_config(args: argparse.Namespace, width: int) -> FacesConfig | None:
    """The ``--faces-*`` flags checked against their limits; None without ``--faces``."""
    _within("--faces-rate", args.faces_rate, FACES_RATE_LIMITS)
    _within("--faces-min-size", args.faces_min_size, FACES_MIN_SIZE_LIMITS)
    _within("--faces-debounce", args.faces_debounce, FACES_DEBOUNCE_LIMITS)
    detect = args.faces_detect_width
    if detect != 0 and not FACES_MIN_DETECT_WIDTH <= detect <= width:
        raise ConfigError(f"--faces-detect-width {detect}: must be 0 (the full width) or "
                          f"{FACES_MIN_DETECT_WIDTH}-{width} (the frame's width)")
    if not args.faces:
        return None
    return FacesConfig(args.faces_rate, args.faces_min_size, detect, args.faces_debounce,
                       args.faces_overlay)


def check_face_engine() -> None:
    """Raise ConfigError unless dlib and the face models are installed (``--faces`` needs them)."""
    install = "install requirements-edge-faces.txt (scripts/install-edge --faces)"
    try:
        import dlib  # noqa: F401  (only to know it loads: the worker process uses it)

        from nvrlib.faces import RECOGNITION_MODEL, SHAPE_MODEL, models_dir

        folder = models_dir()
    except ImportError as exc:
        raise ConfigError(f"--faces: the face engine cannot load ({exc}): {install}") from None
    missing = [name for name in (SHAPE_MODEL, RECOGNITION_MODEL) if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"--faces: face model {folder / missing[0]} is missing: {install}")


def _within(flag: str, value: float, limits: tuple[float, float]) -> None:
    low, high = limits
    if not low <= value <= high:  # NaN fails too
        raise ConfigError(f"{flag} {value:g}: must be {low:g}-{high:g}")


def tls_settings(tls: bool, ca_file: Path | None, pin: str | None) -> TlsSettings | None:
    """Return how to verify the hub (``--tls``, ``--ca``, ``--pin``), or None for plain TCP."""
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"--ca {ca_file}: no such file")
    if not (tls or ca_file or pin):
        return None
    return TlsSettings(ca_file=ca_file, pin=parse_pin(pin) if pin else None)


def default_spool_dir() -> Path:
    """Return the spool's default folder under the user's state directory (XDG)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "nvr-edge" / "spool"


def parse_bytes(text: str, flag: str) -> int:
    """Parse a size such as 4G, 500M or 1000000 into bytes (powers of 1000)."""
    match = _BYTES_RE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{flag} {text!r}: expected a size, e.g. 4G or 500M")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}[match.group(2).lower()]
    size = int(float(match.group(1)) * scale)
    if size < 10**6:
        raise ConfigError(f"{flag} {text!r}: must be at least 1M")
    return size


def pair_names(location: str, cameras: list[str], names: list[str]) -> list[tuple[str, Source]]:
    """Pair each --camera with its --name (or a derived default) and check names are unique."""
    if len(names) > len(cameras):
        raise ConfigError(f"{len(names)} --name flags but only {len(cameras)} --camera")
    pairs = []
    for i, text in enumerate(cameras):
        source = parse_source(text)
        name = camera_name(names[i]) if i < len(names) else default_name(location, source)
        pairs.append((name, source))
    seen = [name for name, _ in pairs]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise ConfigError(f"two cameras are named {dupes[0]!r}: give each a distinct --name")
    return pairs


def camera_name(name: str) -> str:
    """Validate a --name value, raising ConfigError with the allowlist's message."""
    try:
        return validate_camera_name(name)
    except InvalidName as exc:
        raise ConfigError(f"--name {name!r}: {exc}") from None


def check_location(location: str) -> str:
    """Validate --location: printable ASCII (it travels in an HTTP header and on the overlay)."""
    location = location.strip()
    if not location or len(location) > MAX_LOCATION_LENGTH:
        raise ConfigError(f"--location must hold 1-{MAX_LOCATION_LENGTH} characters")
    if not (location.isascii() and location.isprintable()):
        raise ConfigError(f"--location {location!r}: use printable ASCII characters only")
    return location


def parse_size(text: str) -> tuple[int, int]:
    """Parse WxH (e.g. 1280x720) into even width and height, as H.264 4:2:0 needs."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"--size {text!r}: expected WxH, e.g. 1280x720")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= 7680 and 16 <= height <= 4320) or width % 2 or height % 2:
        raise ConfigError(f"--size {text!r}: width and height must be even, 16-7680 x 16-4320")
    return width, height


def parse_bitrate(text: str, flag: str = "--bitrate", maximum: int = 100_000_000) -> int:
    """Parse a bitrate such as 2M, 800k or 1500000 into bits per second."""
    match = _BITRATE_RE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{flag} {text!r}: expected a number with k or M, e.g. 2M or 800k")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    bits = int(float(match.group(1)) * scale)
    if not 50_000 <= bits <= maximum:
        raise ConfigError(f"{flag} {text!r}: must be between 50k and {maximum // 10**6}M")
    return bits


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """Return the bearer token from --token or --token-file (whitespace stripped), if any."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--token-file {token_file}: {exc.strerror}") from None
    if token is None:
        return None
    token = token.strip()
    if not _TOKEN_RE.fullmatch(token):
        raise ConfigError("the token is empty or holds spaces or control characters")
    return token
