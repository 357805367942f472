"""Command line of the hub: `python -m recorder [--listen] [--storage] [--db] [--config]`.

`python -m recorder migrate [--db URL | --config FILE]` brings the catalog's schema up to date
and exits (the hub also does it at every start).
`python -m recorder check-config FILE [--token-file F]` checks a config file and exits: 0 and
"FILE: ok", or 1 and one line per problem.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from nvrlib import camera_urls, ffmpeg_bin
from nvrlib.catalog import db
from nvrlib.redact import install_log_redaction
from recorder.config import (DEFAULT_DB, DEFAULT_LISTEN, DEFAULT_STORAGE, build_config, check_file,
                             load_file)
from recorder.config_schema import report
from recorder.errors import RecorderError
from recorder.hub import Hub
from recorder.ingest.guard import flush_logs, raise_open_file_limit

logger = logging.getLogger("recorder")


def parser() -> argparse.ArgumentParser:
    """Build the argument parser of the hub."""
    p = argparse.ArgumentParser(prog="python -m recorder", description="NVR hub: records edge "
                                "streams and RTSP cameras into rotating, cataloged segments.",
                                epilog="`python -m recorder migrate --help`: update the catalog's "
                                "schema and exit. `python -m recorder check-config FILE`: check a "
                                "config file and exit.")
    p.add_argument("--config", type=Path, help="TOML config file (same keys as the flags, "
                   "plus [[cameras]] tables)")
    p.add_argument("--listen", help=f"ingest address HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--storage", help=f"recordings folder (default {DEFAULT_STORAGE})")
    p.add_argument("--db", help=f"catalog database URL (default {DEFAULT_DB})")
    p.add_argument("--segment-seconds", type=float, help="segment length (default 10)")
    p.add_argument("--token-file", help="file holding the shared ingest bearer token")
    p.add_argument(camera_urls.ALLOW_FLAG, action="store_true", default=None,
                   help="pull cameras on loopback or link-local addresses too (config "
                   f"{camera_urls.ALLOW_KEY}; off by default)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the hub until SIGTERM or SIGINT (or one command); return the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate"]:
        return migrate(argv[1:])
    if argv[:1] == ["check-config"]:
        return check_config(argv[1:])
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # camera credentials never reach the log, whoever logs them
    # APScheduler logs every run of every health check at INFO (one line a second or more);
    # its warnings (a missed or skipped run) still show.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    _raise_open_file_limit()
    try:
        file_values = load_file(args.config) if args.config else {}
        config = build_config(file_values, {
            "listen": args.listen, "storage": args.storage, "db": args.db,
            "segment_seconds": args.segment_seconds, "ingest_token_file": args.token_file,
            camera_urls.ALLOW_KEY: args.allow_local_camera_urls,
        })
        ffmpeg_bin.configure(config.ffmpeg)  # before anything runs it ($NVR_FFMPEG still wins)
        asyncio.run(Hub(config, own_process=True).run())
        flush_logs()  # the counts of refusals and left-out lines of the last burst
    except RecorderError as exc:
        for line in str(exc).splitlines():  # a config error: one log line per problem
            logger.error("%s", line)
        return 2
    except OSError as exc:  # e.g. the port is taken
        logger.error("cannot start: %s", exc)
        return 1
    return 0


def migrate(argv: list[str]) -> int:
    """Apply every catalog migration the database lacks, then print its revision."""
    p = argparse.ArgumentParser(prog="python -m recorder migrate",
                                description="Bring the catalog's schema up to date and exit.")
    p.add_argument("--config", type=Path, help="the hub's TOML config file (its db key)")
    p.add_argument("--db", help=f"catalog database URL (default {DEFAULT_DB})")
    args = p.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    try:
        file_values = load_file(args.config) if args.config else {}
        config = build_config(file_values, {"db": args.db})
    except RecorderError as exc:
        for line in str(exc).splitlines():  # a config error: one log line per problem
            logger.error("%s", line)
        return 2
    engine = db.make_engine(config.db_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
    print(f"catalog {db.redacted(config.db_url)} is at revision {revision}")
    return 0


def check_config(argv: list[str]) -> int:
    """Check a config file as the hub would read it at start; print "FILE: ok" or its problems."""
    p = argparse.ArgumentParser(prog="python -m recorder check-config",
                                description="Check the hub's TOML config file (every key, the "
                                "files it names, and the NVR_* / SENDGRID_* environment) and exit "
                                "0 if it is fine, 1 with one line per problem.")
    p.add_argument("file", type=Path, help="the config file, e.g. /etc/nvr/nvr.toml")
    p.add_argument("--token-file", help="the ingest token file the hub is started with")
    args = p.parse_args(argv)
    try:
        problems = check_file(args.file, overrides={"ingest_token_file": args.token_file})
    except RecorderError as exc:  # the file cannot be read or is not TOML
        problems = str(exc).splitlines()
    return report(args.file, problems)


def _raise_open_file_limit() -> None:
    # systemd starts services with a soft limit of 1024 descriptors; every ingest connection
    # and every ffmpeg pipe takes one, so the hub takes all the hard limit allows.
    before, after = raise_open_file_limit()
    if after > before:
        logger.info("raised the open-file limit from %d to %d descriptors", before, after)
    else:
        logger.info("open-file limit: %d descriptors (the hard limit)", after)
