"""The web app's side of the control channel (commands, status, alerts), done from a test."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nvrlib.catalog.db import make_engine
from nvrlib.control_mark import nudge
from nvrlib.catalog.models import Alert, Camera, CameraStatus, Command, Outage
from tests.support.procs import wait_for


class CatalogControl:
    """What the web app does to a hub's catalog: commands in, status and events out."""

    def __init__(self, hub: Any) -> None:
        self.engine = make_engine(hub.db_url)
        self.storage = hub.storage

    def close(self) -> None:
        """Release the catalog's connections."""
        self.engine.dispose()

    def __enter__(self) -> CatalogControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, camera: str, action: str) -> int:
        """Queue a command for the hub, as the admin panel does; return its id."""
        with Session(self.engine) as session, session.begin():
            command = Command(camera=camera, action=action, requested_by="test", result="")
            session.add(command)
            session.flush()
            command_id = command.id
        nudge(self.storage)  # and the web app rings the hub's doorbell (nvrlib/control_mark.py)
        return command_id

    def result(self, command_id: int) -> str | None:
        """The hub's answer to a command, or None while it is pending."""
        with Session(self.engine) as session:
            command = session.get(Command, command_id)
            return command.result if command and command.done_at else None

    def wait_result(self, command_id: int, timeout: float = 15) -> str:
        """Wait for the hub's answer to a command."""
        return wait_for(lambda: self.result(command_id), timeout, f"command {command_id}")

    def command(self, camera: str, action: str, timeout: float = 15) -> str:
        """Queue a command and wait for the hub's answer."""
        return self.wait_result(self.submit(camera, action), timeout)

    def status(self, camera: str) -> CameraStatus | None:
        """The camera's status row, as the admin page reads it."""
        with Session(self.engine) as session:
            return session.scalar(select(CameraStatus).join(Camera).where(Camera.name == camera))

    def state(self, camera: str) -> str | None:
        """The camera's state (running, backoff, ...) or None."""
        row = self.status(camera)
        return row.state if row is not None else None

    def camera(self, name: str) -> Camera | None:
        """The camera's catalog row."""
        with Session(self.engine) as session:
            return session.scalar(select(Camera).where(Camera.name == name))

    def add_pull_camera(self, name: str, url: str) -> None:
        """Add an approved pull camera, as the admin page does."""
        with Session(self.engine) as session, session.begin():
            session.add(Camera(name=name, location="garden", kind="pull", url=url, enabled=True,
                               approval="approved"))

    def alerts(self, camera: str, kind: str) -> list[Alert]:
        """The alerts of one kind raised for a camera."""
        with Session(self.engine) as session:
            return list(session.scalars(select(Alert).where(Alert.camera == camera,
                                                            Alert.kind == kind)))

    def outages(self, camera: str) -> list[Outage]:
        """The camera's outages, oldest first."""
        with Session(self.engine) as session:
            return list(session.scalars(select(Outage).join(Camera).where(Camera.name == camera)
                                        .order_by(Outage.started_at)))


def add_pulled_camera(hub, name: str, url: str) -> None:
    """Add a pull camera to the catalog as the web app does, and have the hub reload."""
    engine = make_engine(hub.db_url)
    with Session(engine) as session, session.begin():
        session.add(Camera(name=name, kind="pull", url=url, location="gate"))
        session.add(Command(camera=name, action="reload", requested_by="test"))
    engine.dispose()
