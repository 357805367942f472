"""API endpoints for recordings, playback playlists and exports."""

from . import bp  # noqa: F401
