"""Forms of the auth blueprint (Flask-WTF: each carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from ..models import PASSWORD_MAX, USERNAME_MAX


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    """Username, password and "remember me"."""

    username = StringField("Username", filters=[_strip],
                           validators=[DataRequired(), Length(max=USERNAME_MAX)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none",
                                      "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX)],
                             render_kw={"autocomplete": "current-password"})
    remember = BooleanField("Remember me")
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    """An empty form: logging out is a POST that needs the CSRF token."""

    submit = SubmitField("Log out")
