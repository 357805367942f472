"""Alert emails in words: the subject and plain-text body of each kind of alert."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nvrlib.names import DEFAULT_HUB

UTC = dt.timezone.utc

SUBJECT_MAX = 255  # the width of Alert.subject

# Outage.reason -> (a few words for a subject, the sentence a body spells out)
REASONS: dict[str, tuple[str, str]] = {
    "clean_shutdown": ("edge shut down", "the edge shut down cleanly"),
    "connection_lost": ("edge connection lost", "the connection to the edge was lost"),
    "stalled": ("stream stalled", "the edge stayed connected but sent nothing"),
    "failing": ("stream failing", "the stream kept failing to record"),
    "disconnected": ("disconnected by an admin", "disconnected by an admin"),
    "disabled": ("camera disabled", "the camera was disabled"),
    "hub_stopped": ("hub stopped", "the hub was stopped"),
}

# what a debounce summary calls alerts that are not about one camera
KIND_LABELS = {"disk_low": "disk space low", "disk_emergency": "disk nearly full",
               "summary": "alert summaries", "retention_short": "retention",
               "new_camera": "new cameras", "locks_yielded": "locks yielded",
               "admin_locks_yielded": "admin locks yielded"}


@dataclasses.dataclass(frozen=True)
class Message:
    """An alert's email text: ``headline`` is the subject without its prefix."""

    subject: str
    body: str
    headline: str


def duration_text(seconds: float | int | None) -> str:
    """Say a length of time the way people do: '45 s', '2 min 5 s', '1 h 3 min', '2 d 4 h'."""
    if seconds is None:
        return "an unknown time"
    total = max(int(round(float(seconds))), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def iso_utc(at: dt.datetime) -> str:
    """Return an aware time as ISO-8601 UTC to the second ('2024-05-01T12:00:00Z')."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def local_text(at: dt.datetime) -> str:
    """Return a time in the hub's own time zone, with the zone's name."""
    local = at.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.strftime("%Z") or local.strftime("%z"))


def when_text(at: dt.datetime) -> str:
    """Return a time both in UTC and in the hub's local time."""
    return f"{iso_utc(at)} (hub time {local_text(at)})"


def parse_time(value: Any) -> dt.datetime | None:
    """Read an ISO-8601 time from an alert's details (None if absent or unreadable)."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def size_text(n_bytes: Any) -> str:
    """Say a byte count in GB (or MB when small), decimal units as disks are sold."""
    try:
        value = float(n_bytes)
    except (TypeError, ValueError):
        return "an unknown amount"
    if value >= 1e8:
        return f"{value / 1e9:.1f} GB"
    return f"{value / 1e6:.1f} MB"


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _reason(details: Mapping[str, Any]) -> tuple[str, str]:
    reason = str(details.get("reason") or "")
    return REASONS.get(reason, (reason.replace("_", " ") or "unknown reason",
                                reason.replace("_", " ") or "the reason is unknown"))


def _time_line(label: str, value: Any) -> list[str]:
    at = parse_time(value)
    return [f"{label}: {when_text(at)}"] if at else []


def _new_camera(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    peer = str(d.get("peer") or "")
    approval = str(d.get("approval") or "approved")
    headline = f"new camera {camera} connected" + (f" from {peer}" if peer else "")
    if approval == "pending":
        headline += ", waiting for approval"
    how = ("pulled by the hub over RTSP" if d.get("camera_kind") == "pull"
           else "pushed by an edge")
    approval_text = {
        "approved": "approved: the hub records it",
        "pending": "waiting for an admin to approve it in the web app; not recorded until then",
        "rejected": "rejected: the hub refuses its stream",
    }.get(approval, approval)
    lines = [f"What happened: camera {camera} connected to the hub for the first time.",
             f"Location: {d.get('location') or '(not set)'}",
             f"Stream: {how}" + (f", from {peer}" if peer else ""),
             f"Approval: {approval_text}"]
    return headline, lines


def _offline(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    short, sentence = _reason(d)
    lines = [f"What happened: camera {camera} stopped recording: {sentence}."]
    lines += _time_line("Offline since", d.get("since"))
    lines += _time_line("Last recorded footage ends", d.get("last_segment_end"))
    if d.get("peer"):
        lines.append(f"Edge address: {d['peer']}")
    if d.get("detail"):
        lines.append(f"Detail: {d['detail']}")
    return f"{camera} offline: {short}", lines


def _online(camera: str, d: Mapping[str, Any], at: dt.datetime) -> tuple[str, list[str]]:
    seconds = d.get("outage_seconds")
    _, sentence = _reason(d)
    length = duration_text(seconds)
    lines = [f"What happened: camera {camera} is recording again after {length} offline."]
    lines += _time_line("Offline from", d.get("offline_since"))
    lines.append(f"Back online at: {when_text(at)}")
    lines.append(f"Outage length: {length}")
    lines.append(f"Why it was offline: {sentence}")
    if d.get("peer"):
        lines.append(f"Edge address: {d['peer']}")
    lines.append(f"Footage of the gap: {_gap_text(d)}")
    return f"{camera} back online after {length}", lines


def _gap_text(d: Mapping[str, Any]) -> str:
    # "backfill": the edge announced a spool (X-NVR-Spool: 1) and uploads the gap itself
    if d.get("gap") != "backfill":
        return "lost (the camera's edge keeps no spool, so nothing of the outage was recorded)"
    dropped = _number(d.get("dropped_seconds"))
    text = "will be recovered: the edge spooled it and is uploading it (back-filled footage)"
    if dropped > 0:
        text += f"; {duration_text(dropped)} of it was lost when the edge's spool was full"
    return text


def _failing(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    failures = int(_number(d.get("failures")))
    lines = [f"What happened: the recorder of camera {camera} failed {failures} times in a row; "
             "the hub stopped restarting it right away.",
             f"Last error: {d.get('last_error') or '(none recorded)'}"]
    if d.get("retry_in_seconds") is not None:
        lines.append(f"Next try in: {duration_text(d.get('retry_in_seconds'))}")
    return f"{camera} failing: {failures} failures in a row", lines


def _stalled(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    quiet = duration_text(d.get("seconds_without_segment"))
    lines = [f"What happened: camera {camera}'s stream stayed connected but no new footage "
             f"was finished for {quiet}; the hub restarted its recorder.",
             f"Restarts so far: {int(_number(d.get('restarts')))}"]
    return f"{camera} stalled: no new footage for {quiet}, restarted", lines


def _of_hub(d: Mapping[str, Any]) -> str:
    """" of hub X" when the alert came from a hub with an id of its own (several hubs)."""
    hub = d.get("hub")
    return f" of hub {hub}" if isinstance(hub, str) and hub and hub != DEFAULT_HUB else ""


def _disk_low(_camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    free, percent = size_text(d.get("free_bytes")), _number(d.get("free_percent"))
    lines = [f"What happened: the recordings disk{_of_hub(d)} has {free} free ({percent:.1f} % of "
             f"{size_text(d.get('total_bytes'))}).",
             f"Alert threshold: {_number(d.get('threshold_percent')):g} % free",
             "Retention deletes the oldest footage before the disk fills up; add space or "
             "lower the retention settings to keep more headroom."]
    return f"disk space low{_of_hub(d)}: {free} free ({percent:.1f} %)", lines


def _disk_emergency(_camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    count, deleted = int(_number(d.get("deleted_segments"))), size_text(d.get("deleted_bytes"))
    lines = [f"What happened: the recordings disk{_of_hub(d)} was nearly full, so the hub "
             f"deleted the "
             f"{count} oldest segments ({deleted}) regardless of the retention settings.",
             f"Free now: {size_text(d.get('free_bytes'))} of {size_text(d.get('total_bytes'))}"]
    if d.get("only_locked_left"):
        lines.append("Only locked footage was left to delete, so locks yielded their oldest "
                     "footage (a separate alert names them): add space, or remove locks that "
                     "are no longer needed.")
    return f"disk{_of_hub(d)} nearly full: deleted {count} oldest segments ({deleted})", lines


def _lock_line(lock: Mapping[str, Any]) -> str:
    """One yielded lock: its id, camera, who made it and why, its span and what is left."""
    start, end, kept = (parse_time(lock.get(key)) for key in ("start", "end", "kept_from"))
    span = (f"{iso_utc(start)} to {iso_utc(end)}" if start and end else "an unknown span")
    left = f"kept from {iso_utc(kept)}" if kept else "kept from an unknown time"
    return (f"- lock {lock.get('id')} on {lock.get('camera') or 'every camera'} by "
            f"{lock.get('created_by') or 'someone'} ({_one_line(str(lock.get('reason') or ''))}"
            f"): {span}, {left}")


def _locks_yielded(_camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    locks = [lock for lock in d.get("locks") or [] if isinstance(lock, Mapping)]
    admin = bool(d.get("admin"))
    who = "ADMIN locks" if admin else "viewer locks"
    lines = [f"What happened: the recordings disk was nearly full and only locked footage was "
             f"left, so these {who} gave up their oldest footage to keep every camera "
             f"recording:", *(_lock_line(lock) for lock in locks),
             "Each lock stays, shortened to what is left (the Locks page shows it)."]
    if admin:
        lines.append("Admin locks yield only after every viewer lock has: the disk is too "
                     "small for the footage you chose to keep. Add space, or copy the footage "
                     "elsewhere.")
    count = f"1 {who[:-1]}" if len(locks) == 1 else f"{len(locks)} {who}"
    return f"disk full: {count} yielded footage", lines


def _retention_short(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    kept, configured = _number(d.get("kept_days")), _number(d.get("configured_days"))
    cause = {"budget": "the size budget does not hold that many days of footage",
             "emergency": "the disk filled up and the oldest footage was deleted early"}.get(
        str(d.get("cause")), str(d.get("cause") or "unknown"))
    who = f"camera {camera}" if camera != "-" else "the hub"
    lines = [f"What happened: {who} keeps only {kept:.1f} days of footage, not the "
             f"{configured:g} days configured.", f"Why: {cause}"]
    name = camera if camera != "-" else "footage"
    return f"{name} keeps only {kept:.1f} of {configured:g} days", lines


NO_PLAY_LINK = ("No link to play it: set web_url under [alerts] in the hub's config file (the "
                "web app's address, e.g. http://nvr.local:8080) to get one.")


def _motion(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    percent = 100 * _number(d.get("score"))
    start, end = parse_time(d.get("start")), parse_time(d.get("end"))
    lines = [f"What happened: camera {camera} saw motion (at its peak {percent:.1f} % of the "
             "picture moved)."]
    lines += _time_line("Motion started", d.get("start"))
    if start and end:
        lines.append(f"Motion lasted: {duration_text((end - start).total_seconds())}")
    elif start:
        lines.append("Motion ended: not yet when this alert was raised")
    play = d.get("play_url")
    lines.append(f"Play that moment: {play}" if isinstance(play, str) and play else NO_PLAY_LINK)
    lines.append("The picture at its peak is attached." if d.get("snapshot")
                 else "No picture was taken of it.")
    return f"motion on {camera}", lines


def _face(camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    person = d.get("person")
    if isinstance(person, str) and person:
        distance = d.get("distance")
        how = f" (distance {_number(distance):.2f} to their samples)" if distance is not None \
            else ""
        lines, headline = [f"What happened: camera {camera} saw {person}{how}."], \
            f"{person} at {camera}"
    else:
        lines, headline = [f"What happened: camera {camera} saw a face it does not know."], \
            f"unknown face at {camera}"
    lines += _time_line("Seen at", d.get("start"))
    play = d.get("play_url")
    lines.append(f"Play that moment: {play}" if isinstance(play, str) and play else NO_PLAY_LINK)
    lines.append("The face is attached." if d.get("crop") else "No picture of the face is left.")
    return headline, lines


def _test(_camera: str, d: Mapping[str, Any], _at: dt.datetime) -> tuple[str, list[str]]:
    lines = ["This is a test email from the NVR hub: alert emails reach this address."]
    if d.get("requested_by"):
        lines.append(f"Requested by: {d['requested_by']}")
    return "test email", lines


# (camera name or '-', details, event time) -> (headline, body lines)
_Composer = Callable[[str, Mapping[str, Any], dt.datetime], tuple[str, list[str]]]

_COMPOSERS: dict[str, _Composer] = {
    "new_camera": _new_camera, "offline": _offline, "online": _online, "failing": _failing,
    "stalled": _stalled, "disk_low": _disk_low, "disk_emergency": _disk_emergency,
    "retention_short": _retention_short, "test": _test, "locks_yielded": _locks_yielded,
    "admin_locks_yielded": _locks_yielded, "motion": _motion, "face": _face,
}


def _generic(kind: str, camera: str, d: Mapping[str, Any]) -> tuple[str, list[str]]:
    lines = [f"What happened: {kind.replace('_', ' ')}"]
    lines += [f"{key}: {value}" for key, value in sorted(d.items())]
    return (f"{camera}: {kind}" if camera != "-" else kind.replace("_", " ")), lines


def _one_line(text: str) -> str:
    # a header must not carry a line break; SendGrid rejects it
    return " ".join(text.split())


def subject_of(prefix: str, headline: str) -> str:
    """Put the configured prefix in front of a headline, within the column's width."""
    return _one_line(f"{prefix} {headline}" if prefix else headline)[:SUBJECT_MAX]


def compose(kind: str, camera: str | None, at: dt.datetime, details: Mapping[str, Any],
            prefix: str) -> Message:
    """Write the subject and body of one alert from its kind, camera, time and details."""
    name = camera or "-"
    composer = _COMPOSERS.get(kind)
    headline, lines = composer(name, details, at) if composer else _generic(kind, name, details)
    head = [f"Camera: {camera}"] if camera else []
    head.append(f"When: {when_text(at)}")
    # the headline is not capitalised: it may start with a camera name, which is case-sensitive
    body = "\n".join([_one_line(headline) + ".", "", *head, *lines,
                      "", "-- ", "Sent by the NVR hub."])
    return Message(subject_of(prefix, headline), body + "\n", _one_line(headline))


@dataclasses.dataclass(frozen=True)
class Suppressed:
    """An alert the debouncer kept from being emailed, remembered for its summary."""

    at: dt.datetime
    kind: str
    headline: str


def summary_details(items: Sequence[Suppressed], window_seconds: float) -> dict[str, Any]:
    """The details of a summary alert (the ``summary`` kind's JSON)."""
    kinds = Counter(item.kind for item in items)
    return {"window_seconds": window_seconds, "count": len(items),
            "kinds": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            "first_at": iso_utc(min(i.at for i in items)),
            "last_at": iso_utc(max(i.at for i in items))}


def compose_summary(label: str, camera: str | None, items: Sequence[Suppressed],
                    window_seconds: float, at: dt.datetime, prefix: str) -> Message:
    """Write the one email that stands for the alerts a debounce window suppressed."""
    ordered = sorted(items, key=lambda item: item.at)
    details = summary_details(ordered, window_seconds)
    counts = ", ".join(f"{n} {kind}" for kind, n in details["kinds"].items())
    noun = "alert" if len(ordered) == 1 else "alerts"
    headline = (f"{label}: {len(ordered)} more {noun} in the last "
                f"{duration_text(window_seconds)} ({counts}); last: {ordered[-1].kind}")
    head = [f"Camera: {camera}"] if camera else []
    lines = [f"{_one_line(headline)}.", "", *head,
             f"When: {when_text(at)}",
             f"To keep your inbox usable, these {len(ordered)} {noun} were stored but not "
             f"emailed one by one:", ""]
    lines += [f"- {iso_utc(item.at)} (hub time {local_text(item.at)}): {item.headline}"
              for item in ordered]
    lines += ["", "The Events page of the web app lists every alert.", "", "-- ",
              "Sent by the NVR hub."]
    return Message(subject_of(prefix, headline), "\n".join(lines) + "\n", _one_line(headline))


def label_for(kind: str, camera: str | None) -> str:
    """Name what a debounce key is about: the camera, or the kind for hub-wide alerts."""
    return camera or KIND_LABELS.get(kind, kind.replace("_", " "))
