"""Forms of the admin blueprint: pulled cameras, and the buttons that POST an action."""

from __future__ import annotations

from collections.abc import Callable

from flask_wtf import FlaskForm
from wtforms import Field, Form, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError

from .. import cameras_service as cameras

_PLAIN = {"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}


def _checked_by(check: Callable[[str], str]) -> Callable[[Form, Field], None]:
    """A WTForms validator that runs one of cameras_service's checks (one rule for all)."""

    def validate(_form: Form, field: Field) -> None:
        try:
            check(field.data or "")
        except cameras.InvalidRequest as exc:
            raise ValidationError(str(exc)) from None

    return validate


def _blank_or(check: Callable[[str], str]) -> Callable[[Form, Field], None]:
    inner = _checked_by(check)

    def validate(form: Form, field: Field) -> None:
        if (field.data or "").strip():
            inner(form, field)

    return validate


class PullCameraForm(FlaskForm):
    """A new RTSP camera for the hub to pull."""

    name = StringField("Name", validators=[DataRequired(), _checked_by(cameras.check_name)],
                       render_kw=_PLAIN)
    location = StringField("Location", validators=[_checked_by(cameras.check_location)])
    url = StringField("RTSP URL", validators=[DataRequired(), _checked_by(cameras.check_pull_url)],
                      render_kw={**_PLAIN, "inputmode": "url",
                                 "placeholder": "rtsp://user:password@192.0.2.10:554/stream1"})
    # shown only when several hubs record into the catalog (the view fills in the choices)
    hub = SelectField("Hub", validators=[_checked_by(cameras.check_hub)], validate_choice=False)
    submit = SubmitField("Add camera")


class EditPullCameraForm(FlaskForm):
    """A pulled camera's location and URL (its password shown as ***, kept unless retyped)."""

    location = StringField("Location", validators=[_checked_by(cameras.check_location)])
    url = StringField("RTSP URL", validators=[_blank_or(cameras.check_pull_url)],
                      render_kw={**_PLAIN, "inputmode": "url"})
    submit = SubmitField("Save")


class ActionForm(FlaskForm):
    """A button that POSTs an action with the CSRF token."""

    submit = SubmitField("OK")


class IngestTokenForm(FlaskForm):
    """A new per-camera ingest token."""

    camera = StringField("Camera", validators=[DataRequired(), _checked_by(cameras.check_name)],
                         render_kw=_PLAIN)
    note = StringField("Note", validators=[Length(max=200)])
    submit = SubmitField("Make token")
