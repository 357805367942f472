"""The web app's marks wake the hub through inotify (recorder/supervise/marks.py): a viewer's
``.wanted`` in an old or a new camera folder, the control mark; nothing else does, and the hub's
control loop acts on a nudge at once, on its safety poll without one, and polls without inotify."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog import db
from nvrlib.catalog.models import Command
from nvrlib.control_mark import CHANGED_MARK, control_dir, nudge
from recorder import hub as hub_module
from recorder.config import HubConfig
from recorder.hub import Hub
from recorder.supervise import marks
from recorder.supervise.marks import MarkWatcher, wait_for
from tests.support.aio import run

SOON = 2.0  # seconds: what "at once" may take on a loaded machine


def watcher(root: Path) -> MarkWatcher:
    return MarkWatcher(root / ".live", control_dir(root))


def touch_wanted(root: Path, camera: str) -> None:
    folder = root / ".live" / camera
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".wanted").touch()


def test_a_nudge_and_a_viewers_mark_wake_their_own_loop_only(tmp_path: Path) -> None:
    (tmp_path / ".live" / "porch").mkdir(parents=True)  # a folder from before the start

    async def scenario() -> None:
        watch = watcher(tmp_path)
        assert watch.start() and watch.active
        try:
            assert nudge(tmp_path)
            assert await wait_for(watch.control, SOON)
            assert not watch.live.is_set()
            touch_wanted(tmp_path, "porch")
            assert await wait_for(watch.live, SOON)
            touch_wanted(tmp_path, "yard")  # a first viewer: the folder is new
            assert await wait_for(watch.live, SOON)
            touch_wanted(tmp_path, "yard")  # and its watch now sees the next touch
            assert await wait_for(watch.live, SOON)
            # the hub's own live pieces beside the mark wake nobody
            (tmp_path / ".live" / "yard" / "live-1.ts").write_bytes(b"x")
            (tmp_path / ".live" / "yard" / "live.m3u8").write_text("#EXTM3U\n")
            assert not await wait_for(watch.live, 0.3)
            assert not watch.control.is_set()
        finally:
            watch.close()
        assert not watch.active

    run(scenario())


def test_without_inotify_the_watcher_says_so_and_the_caller_polls(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setattr(marks, "INotify", None)

    async def scenario() -> None:
        watch = watcher(tmp_path)
        assert not watch.start() and not watch.active
        watch.close()

    run(scenario())


def test_a_storage_the_watcher_cannot_use_makes_it_poll_not_fail(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")

    async def scenario() -> None:
        watch = MarkWatcher(tmp_path / "file" / ".live", tmp_path / "file" / ".control")
        assert not watch.start() and not watch.active

    run(scenario())


def test_wait_for_tells_a_set_event_from_a_timeout_and_clears_it() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        assert not await wait_for(event, 0.05)
        event.set()
        assert await wait_for(event, 5) and not event.is_set()
        assert not await wait_for(event, 0)

    run(scenario())


def test_a_wait_cancelled_as_its_event_is_set_is_cancelled() -> None:
    # Python 3.11's asyncio.wait_for lost this cancellation: the hub's stop then waited for ever
    async def scenario() -> None:
        event = asyncio.Event()
        waiter = asyncio.create_task(wait_for(event, 30))
        await asyncio.sleep(0)
        event.set()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(scenario())


def test_nudge_makes_the_mark_and_never_follows_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    folder = control_dir(tmp_path / "rec")
    folder.mkdir(parents=True)
    (folder / CHANGED_MARK).symlink_to(target)
    assert nudge(tmp_path / "rec")
    assert not (folder / CHANGED_MARK).is_symlink() and (folder / CHANGED_MARK).is_file()
    assert target.read_text() == "keep me"
    assert not nudge(tmp_path / "missing" / "rec")  # no storage: nothing made, False


# -- the hub's control loop ---------------------------------------------------------------------

@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A Hub object on a real SQLite catalog whose control loop a test runs by itself."""
    hub = Hub(HubConfig(storage=tmp_path / "rec", db_url=f"sqlite:///{tmp_path / 'nvr.db'}"))
    db.upgrade(hub.engine)
    yield hub
    hub.executor.shutdown()
    hub.engine.dispose()


def queue_reload(hub: Hub) -> int:
    with Session(hub.engine) as session, session.begin():
        command = Command(camera="*", action="reload", requested_by="test", result="",
                          created_at=dt.datetime.now(dt.timezone.utc))
        session.add(command)
        session.flush()
        return command.id


def result_of(hub: Hub, command_id: int) -> str | None:
    with Session(hub.engine) as session:
        return session.scalar(select(Command.result).where(Command.id == command_id,
                                                           Command.done_at.is_not(None)))


async def answered_within(hub: Hub, command_id: int, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await loop.run_in_executor(None, result_of, hub, command_id):
            return True
        await asyncio.sleep(0.05)
    return False


def run_control_loop(hub: Hub, scenario) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        hub.marks.start()
        task = asyncio.create_task(hub._control_loop())
        try:
            await asyncio.sleep(0.2)  # its first pass (status, commands) is done
            await scenario()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            hub.marks.close()

    run(main())


def test_the_control_loop_acts_on_a_nudge_at_once_and_on_its_safety_poll_without(
        hub: Hub, monkeypatch) -> None:
    monkeypatch.setattr(hub_module, "CONTROL_SAFETY_SECONDS", 1.5)

    async def scenario() -> None:
        assert hub.marks.active
        nudged = queue_reload(hub)
        nudge(hub.storage.root)
        assert await answered_within(hub, nudged, 1.0)  # well before the 1.5-s poll
        quiet = queue_reload(hub)  # written by something that does not ring
        assert not await answered_within(hub, quiet, 0.5)
        assert await answered_within(hub, quiet, 1.5 + SOON)

    run_control_loop(hub, scenario)


def test_an_unknown_token_has_the_hub_read_the_catalogs_tokens_again(hub: Hub) -> None:
    async def scenario() -> None:
        hub._reload_tokens_soon()
        assert hub.marks.control.is_set()
        hub.marks.control.clear()
        hub._reload_tokens_soon()  # a second within the second: no second read
        assert not hub.marks.control.is_set()

    run_control_loop(hub, scenario)


def test_without_inotify_the_control_loop_polls_every_second(hub: Hub, monkeypatch) -> None:
    monkeypatch.setattr(marks, "INotify", None)

    async def scenario() -> None:
        assert not hub.marks.active
        assert await answered_within(hub, queue_reload(hub), hub_module.CONTROL_POLL_SECONDS + SOON)

    run_control_loop(hub, scenario)


def test_an_inotify_that_fails_while_the_hub_runs_turns_the_control_loop_to_polling(
        hub: Hub, monkeypatch) -> None:
    monkeypatch.setattr(hub_module, "CONTROL_SAFETY_SECONDS", 60.0)

    async def scenario() -> None:
        assert hub.marks.active

        def broken(*_args: object, **_kwargs: object) -> list[object]:
            raise OSError(5, "Input/output error")

        hub.marks._inotify.read = broken  # type: ignore[union-attr,method-assign]
        nudge(hub.storage.root)  # the next read fails: the watcher gives up and wakes the loops
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SOON
        while hub.marks.active and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert not hub.marks.active
        quiet = queue_reload(hub)  # no doorbell any more: the 1-s poll, not the 60-s one
        assert await answered_within(hub, quiet, hub_module.CONTROL_POLL_SECONDS + SOON)

    run_control_loop(hub, scenario)
