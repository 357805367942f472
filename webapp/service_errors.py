"""The one base of the errors with which the web app's services refuse a request.

A service (cameras, people, locks, motion and alert settings, query parameters) raises a
subclass that carries the HTTP status saying why; the JSON API answers every one of them the
same way, ``{"error": message}`` with that status (one handler on its blueprint, webapp/api),
and a page shows the message where the form is.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request a service refuses; ``status`` is the HTTP status that says why."""

    status = 400
