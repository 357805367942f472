"""Views of the live blueprint."""

from . import bp  # noqa: F401
