"""``python -m edge``: stream one or more cameras to the hub until SIGTERM or SIGINT.

``python -m edge check-config FILE [FLAGS]`` checks a config file (with any flags the service
adds) through the same parser and exits 0 with "FILE: ok", or 1 with one line per problem.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from nvrlib.redact import install_log_redaction, redact

from .capture import quiet_opencv
from .cli import EdgeConfig, build_parser, check_face_engine, config_from_args, parse_args
from .config_file import CONFIG_FLAG, expand_config_file
from .errors import ConfigError
from .spool import Spool, SpoolError
from .stream import StreamWorker
from .uplink import HubAddress

# Under -m, __name__ is "__main__"; name the package so the logs read "edge: ...".
logger = logging.getLogger("edge")

# After a stop request each stream flushes, sends its last chunk and reads the hub's answer
# (bounded by uplink timeouts: stream.FINISH_TIMEOUT); past this the process exits anyway.
SHUTDOWN_GRACE = 12.0


def configure_logging(level: str) -> None:
    """Log to stderr with time, level and the stream's logger name."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    install_log_redaction()  # a camera URL's password never reaches the log


def install_signal_handlers(stop: threading.Event) -> None:
    """Make SIGTERM and SIGINT request a clean stop (the handlers only set a flag)."""

    def request_stop(signum: int, _frame: object) -> None:
        """Ask every stream to finish (the main loop notices the flag)."""
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def open_spools(config: EdgeConfig) -> list[Spool | None]:
    """Open each camera's spool folder (its share of --spool-size), or None with --no-spool."""
    if config.spool_dir is None:
        return [None for _ in config.streams]
    share = config.spool_bytes // max(1, len(config.streams))
    spools: list[Spool | None] = []
    try:
        for stream in config.streams:
            spools.append(Spool(config.spool_dir / stream.name, share, fps=stream.fps,
                                log=logging.getLogger(f"edge.spool.{stream.name}")))
    except SpoolError:
        for spool in spools:
            spool.close()
        raise
    return spools


def run(config: EdgeConfig, stop: threading.Event) -> int:
    """Run every camera until ``stop`` or until all end; return the process exit code."""
    hub = HubAddress(config.hub_host, config.hub_port, config.token, config.location,
                     tls=config.tls, protocol=config.protocol)
    try:
        spools = open_spools(config)
    except SpoolError as exc:
        logger.error("%s", exc)
        return 1
    workers = [
        StreamWorker(stream, hub, stop, spool=spool, backfill_rate=config.backfill_rate)
        for stream, spool in zip(config.streams, spools)
    ]
    for worker in workers:
        worker.start()
    while any(w.is_alive() for w in workers) and not stop.wait(0.2):
        pass
    if stop.is_set():
        logger.info("stopping: finishing %d stream(s)", sum(w.is_alive() for w in workers))
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    stuck = [w.config.name for w in workers if w.is_alive()]
    if stuck:
        logger.warning("streams did not finish in time: %s", ", ".join(stuck))
    # One failed camera is logged and the others carry on; only all failing is an error.
    return 1 if all(w.failed for w in workers) else 0


def exposed_credentials(argv: list[str]) -> list[str]:
    """The --camera values on the command line itself that carry a password or a key."""
    found = []
    for index, arg in enumerate(argv):
        if arg == "--camera" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--camera="):
            value = arg.removeprefix("--camera=")
        else:
            continue
        if redact(value) != value:
            found.append(redact(value))
    return found


def warn_exposed_credentials(argv: list[str]) -> None:
    """Say once that a camera password on the command line is readable by every local user."""
    for shown in exposed_credentials(argv):
        logger.warning("--camera %s has credentials on the command line, where any local user "
                       "reads them (ps, /proc): put the camera in a --config file (mode 0600) "
                       "instead", shown)


def check_config(argv: list[str]) -> int:
    """Check a config file (and flags) as the edge would read them; print ok or the problems."""
    if not argv or argv[0].startswith("-"):
        print("usage: python -m edge check-config FILE [FLAGS]", file=sys.stderr)
        return 2
    path, flags = argv[0], argv[1:]
    parser = build_parser()
    parser.error = _raise_config_error  # type: ignore[method-assign]  # a line, not an exit
    try:
        config = config_from_args(
            parser.parse_args(expand_config_file(parser, [CONFIG_FLAG, path, *flags])))
        if any(stream.faces for stream in config.streams):
            check_face_engine()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def _raise_config_error(message: str) -> NoReturn:
    raise ConfigError(message)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, set up logging and signals, and run the streams (or one command)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check-config"]:
        return check_config(argv[1:])
    config = parse_args(argv)
    if any(stream.faces for stream in config.streams):
        try:
            check_face_engine()
        except ConfigError as exc:  # one line, not the whole usage: the flag is right
            print(f"python -m edge: {exc}", file=sys.stderr)
            return 2
    configure_logging(config.log_level)
    warn_exposed_credentials(argv)
    # OpenCV's FFmpeg backend defaults RTSP to UDP, which loses packets on busy Wi-Fi.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    quiet_opencv()
    stop = threading.Event()
    install_signal_handlers(stop)
    return run(config, stop)


if __name__ == "__main__":
    sys.exit(main())
