"""Start-up recovery: reap stale ffmpegs, then reconcile disk and catalog both ways."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import signal
import time
from pathlib import Path

from sqlalchemy import select, update

from nvrlib.names import is_valid_camera_name

from nvrlib.catalog.models import Camera, Run, Segment, utcnow
from recorder.store.catalog import Catalog, RunInfo, parse_incoming_name
from recorder.store.probe import ProbeError, probe
from recorder.store.retention import finish_deletions
from recorder.store.storage import INCOMING, LIVE, SEGMENT_SUFFIX, Storage, durable_move
from recorder.store.trim import TrimError, TrimResult, trim_segment

logger = logging.getLogger(__name__)

# How long a stale ffmpeg gets to finish its open segment after SIGTERM before SIGKILL: an
# ffmpeg whose stdin is gone finishes in well under a second; one pulling RTSP needs a moment.
REAP_GRACE_SECONDS = 3.0

_FINAL_NAME_RE = re.compile(
    r"(?P<camera>.+)-(?P<stamp>\d{8}T\d{6})\.(?P<ms>\d{3})Z-(?P<run>[0-9a-f]{8,16})-(?P<seq>\d{6,})\.ts")


@dataclasses.dataclass
class ReconcileReport:
    """What start-up recovery did, for the log and for tests."""

    reaped: list[int] = dataclasses.field(default_factory=list)
    recovered: list[str] = dataclasses.field(default_factory=list)
    quarantined: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    found: list[str] = dataclasses.field(default_factory=list)  # missing rows whose file is back
    trimmed: list[str] = dataclasses.field(default_factory=list)  # recovered with a torn end cut
    runs_closed: int = 0
    deletions_finished: int = 0  # retention deletions a stop interrupted, completed now


def reconcile(catalog: Catalog, storage: Storage) -> ReconcileReport:
    """Run every start-up recovery step of docs/design/recording.md, in order."""
    report = ReconcileReport()
    report.reaped = reap_stale_ffmpeg(storage.root)
    report.runs_closed = _close_open_runs(catalog)
    # before the walk: a half-deleted segment's file must not be recovered as uncataloged
    report.deletions_finished = finish_deletions(catalog, storage)
    known = _known_paths(catalog)
    for path in sorted(_segment_files(storage)):
        relative = str(storage.relative(path))
        if relative not in known:
            _recover_file(catalog, storage, path, report)
    report.missing, report.found = _mark_missing(catalog, storage)
    _log_report(report)
    return report


def recover_run_leftovers(catalog: Catalog, camera: str, run_id: str) -> ReconcileReport:
    """Catalog (or quarantine) what a run left in .incoming when its ffmpeg died."""
    report = ReconcileReport()
    incoming = catalog.storage.incoming_dir(camera)
    for path in sorted(incoming.glob(f"{run_id}-*{SEGMENT_SUFFIX}")):
        _recover_file(catalog, catalog.storage, path, report)
    for path in report.recovered:
        logger.warning("recovered segment %s after its ffmpeg died", path)
    return report


def reap_stale_ffmpeg(storage_root: Path, grace: float = REAP_GRACE_SECONDS) -> list[int]:
    """Stop ffmpeg processes left writing into this storage's .incoming folders by a dead hub.

    Each gets SIGTERM and up to ``grace`` seconds to finish its open segment (most are
    already finishing: the parent-death signal is SIGTERM too); survivors get SIGKILL.
    """
    stale = [pid for pid in _pids() if _writes_into(_cmdline(pid), storage_root)]
    signalled = _signal_all(stale, signal.SIGTERM)
    _wait_gone(signalled, grace)
    survivors = [pid for pid in signalled if not _is_gone(pid)]
    _wait_gone(_signal_all(survivors, signal.SIGKILL))
    if survivors:
        logger.warning("%d stale ffmpeg process(es) ignored SIGTERM and were killed", len(survivors))
    return signalled


def _writes_into(argv: list[str], storage_root: Path) -> bool:
    """True for an ffmpeg with an output (or input) in an .incoming or live folder of the root."""
    root = str(storage_root) + os.sep
    markers = (os.sep + INCOMING + os.sep, root + LIVE + os.sep)
    return bool(argv) and any("ffmpeg" in os.path.basename(a) for a in argv[:4]) and \
        any(a.startswith(root) and (markers[0] in a[len(root) - 1:] or a.startswith(markers[1]))
            for a in argv)


def _signal_all(pids: list[int], signum: int) -> list[int]:
    sent = []
    for pid in pids:
        try:
            os.kill(pid, signum)
            sent.append(pid)
        except ProcessLookupError:
            pass
    return sent


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) != os.getpid()]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and not _is_gone(pid):
            time.sleep(0.02)


def _is_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _close_open_runs(catalog: Catalog) -> int:
    with catalog.sessions.begin() as session:
        result = session.execute(update(Run).where(Run.hub_id == catalog.hub_id,
                                                   Run.ended_at.is_(None))
                                 .values(ended_at=utcnow(), end_reason="hub stopped abruptly"))
        return result.rowcount or 0


def _known_paths(catalog: Catalog) -> set[str]:
    with catalog.session() as session:
        return set(session.scalars(select(Segment.path).where(Segment.hub_id == catalog.hub_id)))


def _segment_files(storage: Storage) -> list[Path]:
    if not storage.root.exists():
        return []
    files = []
    for camera_dir in storage.root.iterdir():
        if camera_dir.is_dir() and not camera_dir.name.startswith("."):
            files.extend(p for p in camera_dir.rglob(f"*{SEGMENT_SUFFIX}") if p.is_file())
    return files


def _recover_file(catalog: Catalog, storage: Storage, path: Path, report: ReconcileReport) -> None:
    try:
        info, seq = _run_info_for(catalog, storage, path)
        # cut a torn end back to the last complete frame (durably) before anything reads times
        cut = trim_segment(path)
        result = probe(path)  # demux only: trim_segment has just decoded every frame
    except (ProbeError, TrimError, LookupError) as exc:
        target = storage.quarantine_path(path)
        durable_move(path, target)
        report.quarantined.append(str(storage.relative(target)))
        logger.warning("quarantined %s: %s", path.name, exc)
        return
    info.codec, info.width, info.height = result.codec, result.width, result.height
    segment = catalog.catalog_recovered(info, path, seq, result.first_pts, result.end_pts,
                                        _note(path, cut))
    report.recovered.append(str(storage.relative(segment.path)))
    if cut.trimmed:
        report.trimmed.append(report.recovered[-1])


def _note(path: Path, cut: TrimResult) -> str:
    note = "interrupted segment" if path.parent.name == INCOMING else "found on disk, not cataloged"
    if cut.trimmed:
        note += f"; torn end cut ({cut.size_before - cut.size_after} bytes: {cut.reason})"
    return note


def _run_info_for(catalog: Catalog, storage: Storage, path: Path) -> tuple[RunInfo, int]:
    camera = storage.relative(path).parts[0]
    if not is_valid_camera_name(camera):
        raise LookupError(f"folder {camera!r} is not a valid camera name")
    parsed = parse_incoming_name(path.name)
    if parsed is not None:
        return _info_from_run_row(catalog, camera, parsed[0], path), parsed[1]
    match = _FINAL_NAME_RE.fullmatch(path.name)
    if match is None or match["camera"] != camera:
        raise LookupError("the file name is not one the hub writes")
    stamp = dt.datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    start = stamp + dt.timedelta(milliseconds=int(match["ms"]))
    info = _info_from_run_row(catalog, camera, match["run"], path)
    # the name holds the start the hub computed before the crash: anchor on it exactly
    first_pts = probe(path).first_pts
    info.anchor_wall, info.anchor_pts = start, first_pts
    return info, int(match["seq"])


def _info_from_run_row(catalog: Catalog, camera: str, run_id: str, path: Path) -> RunInfo:
    with catalog.session() as session:
        run = session.get(Run, run_id)
        location = session.scalar(select(Camera.location).where(Camera.name == camera)) or ""
    if run is None:
        # No run row (a catalog restored from a backup, or files copied in by hand): the
        # file's last write is the best clock we have. Rows are made so the insert can refer
        # to them.
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
        info = RunInfo(run_id=run_id, camera=camera, location=location, anchor_wall=mtime,
                       anchor_pts=None)
        catalog.start_run(info, kind="push", peer="")
        catalog.end_run(run_id, "recovered without a run row")
        return info
    return RunInfo(run_id=run_id, camera=camera, location=run.location or location,
                   anchor_wall=run.anchor_wall, anchor_pts=run.anchor_pts)


def _mark_missing(catalog: Catalog, storage: Storage) -> tuple[list[str], list[str]]:
    """Mark rows whose file is gone ``missing``, and missing rows whose file is back ``ok``."""
    missing, found = [], []
    with catalog.sessions.begin() as session:
        for segment in session.scalars(select(Segment).where(  # this hub's storage only
                Segment.hub_id == catalog.hub_id, Segment.status.in_(("ok", "missing")))):
            exists = storage.resolve_catalog_path(segment.path).exists()
            if segment.status == "ok" and not exists:
                segment.status = "missing"
                missing.append(segment.path)
            elif segment.status == "missing" and exists:  # e.g. restored from a backup
                segment.status = "ok"
                found.append(segment.path)
    return missing, found


def _log_report(report: ReconcileReport) -> None:
    if report.reaped:
        logger.warning("stopped %d stale ffmpeg process(es): %s", len(report.reaped), report.reaped)
    for path in report.recovered:
        logger.warning("recovered segment %s", path)
    for path in report.missing:
        logger.warning("catalog row for %s marked missing: the file is gone", path)
    for path in report.found:
        logger.info("catalog row for %s is ok again: its file is back", path)
    logger.info("reconciled storage: %d recovered, %d quarantined, %d missing, %d runs closed, "
                "%d deletions finished, %d torn ends cut", len(report.recovered),
                len(report.quarantined), len(report.missing), report.runs_closed,
                report.deletions_finished, len(report.trimmed))
