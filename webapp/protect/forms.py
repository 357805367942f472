"""Forms of the protect blueprint: a time range to lock, and the buttons that POST."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import FloatField, HiddenField, IntegerField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from .limits import COUNT_RANGE, HOURS_RANGE
from .locks import MAX_NOTE_LENGTH

ALL_CAMERAS = ""  # the camera choice that means "every camera" (a NULL camera_id)


class LockForm(FlaskForm):
    """A time range of one camera or of all, read in the browser's time zone, and a note."""

    camera = SelectField("Camera", validate_choice=False)  # checked against the catalog
    start = StringField("From", validators=[DataRequired("Give the start of the range.")],
                        render_kw={"type": "datetime-local", "step": "1"})
    end = StringField("To", validators=[DataRequired("Give the end of the range.")],
                      render_kw={"type": "datetime-local", "step": "1"})
    tz = HiddenField(render_kw={"data-tz": ""})  # recordings.js fills in the browser's zone
    note = StringField("Reason", validators=[
                           DataRequired("Say why this footage must be kept."),
                           Length(max=MAX_NOTE_LENGTH)],
                       render_kw={"maxlength": MAX_NOTE_LENGTH,
                                  "placeholder": "Why keep it, e.g. \"parcel stolen\""})
    next = HiddenField()  # where to go back to after locking (a page of this site)
    submit = SubmitField("Protect")


class NoteForm(FlaskForm):
    """The Protect button of one recording: its reason and where to go back to."""

    note = StringField("Reason", validators=[Length(max=MAX_NOTE_LENGTH)])  # locks checks it
    next = HiddenField()
    submit = SubmitField("Protect")


class ActionForm(FlaskForm):
    """A button that POSTs with the CSRF token (Remove)."""

    next = HiddenField()
    submit = SubmitField("OK")


class LimitsForm(FlaskForm):
    """The caps on every viewer's locks (admins only): how many, and how many hours in all."""

    max_locks = IntegerField("Most locks per viewer", validators=[
        InputRequired("Give the most locks a viewer may hold."),
        NumberRange(*COUNT_RANGE, "From %(min)s to %(max)s.")])
    max_hours = FloatField("Most locked hours per viewer", validators=[
        InputRequired("Give the most hours a viewer's locks may cover."),
        NumberRange(*HOURS_RANGE, f"From {HOURS_RANGE[0]:g} to {HOURS_RANGE[1]:g} hours.")])
    submit = SubmitField("Save limits")
