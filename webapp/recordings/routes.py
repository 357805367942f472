"""Views of the recordings blueprint."""

from . import bp  # noqa: F401
