"""Forms of the account blueprint (Flask-WTF: each carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired, Length

from ..models import PASSWORD_MAX


class FaceEnrollForm(FlaskForm):
    """The password, asked again before face sign-in is turned on (the pictures ride along)."""

    password = PasswordField("Your password", validators=[DataRequired(), Length(max=PASSWORD_MAX)],
                             render_kw={"autocomplete": "current-password"})


class FaceOffForm(FlaskForm):
    """Turn face sign-in off: a POST carrying the CSRF token."""

    submit = SubmitField("Turn face sign-in off")
