"""API endpoints for cameras: status and control."""

from . import bp  # noqa: F401
