"""Forms of the users blueprint."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import Field, Form, PasswordField, SelectChoice, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from ..models import ROLE_ADMIN, ROLE_VIEWER, password_problem, username_problem

ROLE_CHOICES = [SelectChoice(ROLE_VIEWER, "Viewer (watch and export)"),
                SelectChoice(ROLE_ADMIN, "Admin (everything)")]


def _check_username(_form: Form, field: Field) -> None:
    problem = username_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def _check_password(_form: Form, field: Field) -> None:
    problem = password_problem(field.data or "", current_app.config["PASSWORD_MIN_LENGTH"])
    if problem:
        raise ValidationError(problem)


class CreateUserForm(FlaskForm):
    """A new account: username, role, initial password."""

    username = StringField("Username", validators=[DataRequired(), _check_username],
                           render_kw={"autocomplete": "off", "autocapitalize": "none"})
    role = SelectField("Role", choices=ROLE_CHOICES, default=ROLE_VIEWER)
    password = PasswordField("Initial password", validators=[DataRequired(), _check_password],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", "The two passwords differ.")],
        render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Create user")


class PasswordForm(FlaskForm):
    """A new password for an existing account."""

    password = PasswordField("New password", validators=[DataRequired(), _check_password],
                             render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", "The two passwords differ.")],
        render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Set password")


class RoleForm(FlaskForm):
    """The role of an account."""

    role = SelectField("Role", choices=ROLE_CHOICES)
    submit = SubmitField("Change role")


class ActionForm(FlaskForm):
    """A button that POSTs with the CSRF token (disable, enable, token create and revoke)."""

    submit = SubmitField("OK")
