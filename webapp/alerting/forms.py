"""Forms of the alert settings page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, Form, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError

from .service import MAX_SETTING_LENGTH, MUTE_CHOICES, AlertSettingsError, parse_addresses


def _addresses(_form: Form, field: Field) -> None:
    try:
        parse_addresses(field.data or "")
    except AlertSettingsError as exc:
        raise ValidationError(str(exc)) from None


class RecipientsForm(FlaskForm):
    """The alert addresses, comma-separated (empty: the hub's config file decides)."""

    addresses = StringField("Send alerts to",
                            validators=[Length(max=MAX_SETTING_LENGTH), _addresses],
                            render_kw={"autocomplete": "off", "autocapitalize": "none",
                                       "spellcheck": "false", "inputmode": "email",
                                       "placeholder": "owner@example.com, neighbour@example.org"})
    submit = SubmitField("Save addresses")


class MuteForm(FlaskForm):
    """Mute one camera's alerts for a while (they are still stored and shown)."""

    camera = SelectField("Camera", validators=[DataRequired()], choices=[])
    length = SelectField("For", choices=[SelectChoice(key, label)
                                         for key, label, _ in MUTE_CHOICES],
                         default="1h")
    submit = SubmitField("Mute")


class ButtonForm(FlaskForm):
    """A button that POSTs an action with the CSRF token (unmute, send a test email)."""

    submit = SubmitField("OK")
