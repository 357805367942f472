"""Mask camera credentials in any text: URL userinfo and secret-looking query parameters.

One module serves every place a camera URL could show: log lines (a formatter on every
handler of the hub, the web app and the edge), ``runs.peer``, alerts, error text, pages and
API answers. Masking is idempotent, and text without a secret comes back unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"

# userinfo in any URL: scheme://user:password@host -> scheme://***@host. Greedy up to the last
# "@" before the path or a space, so an unencoded "@" or quote in a password is hidden too
# (masking a little more than the userinfo now and then is the price of never leaking one).
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
# the edit form keeps the user name: scheme://user:password@ -> scheme://user:***@
_PASSWORD_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^:/@\s]*):[^/\s]*@")
# Query (and matrix) parameters whose name looks secret, case-insensitive, as a substring:
# password, pass, pwd, passwd, token, key, secret, auth, sig, signature, api_key, access_token,
# credential(s), session... Masking a harmless "keyframe=" too is the price of never missing one.
# The value runs to the next separator or space: a quote after it ("...?token=abc':") is masked
# too, rather than a raw quote inside the value letting its rest through.
SECRET_NAME = r"pass|pwd|token|secret|key|auth|sig|credential|session|cookie"
# Secret names too short to match as substrings ("st" is in "start"): matched whole.
# st: the web app's stream link token (webapp/stream_links.py).
EXACT_SECRET_NAMES = r"st"
_SECRET_PARAM_RE = re.compile(
    rf"([?&;](?:[^=&;#\s]*(?:{SECRET_NAME})[^=&;#\s]*|{EXACT_SECRET_NAMES})=)[^&;#\s]*",
    re.IGNORECASE)


def redact(text: str) -> str:
    """Return ``text`` with every URL's userinfo and secret query values replaced by ***."""
    if "://" not in text and "=" not in text:
        return text  # the common log line: nothing that could carry a secret
    return _SECRET_PARAM_RE.sub(rf"\1{MASK}", _USERINFO_RE.sub(rf"\1{MASK}@", text))


def redact_for_edit(url: str) -> str:
    """Return a URL for the admin's edit form: the user name kept, the password and secret
    query values shown as *** (see ``unmask``)."""
    if _PASSWORD_RE.search(url):
        masked = _PASSWORD_RE.sub(rf"\1\2:{MASK}@", url)
    else:  # a user name alone may be the secret (rtsp://TOKEN@host)
        masked = _USERINFO_RE.sub(rf"\1{MASK}@", url)
    return _SECRET_PARAM_RE.sub(rf"\1{MASK}", masked)


def redact_value(value: Any) -> Any:
    """Mask the strings inside a JSON-like value (dicts, lists, strings); others as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value


class MaskLeft(ValueError):
    """An edited URL still holds *** where the stored URL has nothing to put back."""


def unmask(edited: str, stored: str | None) -> str:
    """Put the stored password and secret query values back where ``edited`` still shows ***.

    The admin's edit form shows ``redact_for_edit(stored)``; sent back untouched, or with only
    the host or path changed, the camera keeps its secrets. A *** with nothing stored to put
    back raises MaskLeft.
    """
    if MASK not in edited:
        return edited
    old = urlsplit(stored or "")
    new = urlsplit(edited)
    netloc = _unmask_netloc(new.netloc, old.netloc)
    query = _unmask_query(new.query, old.query)
    result = new._replace(netloc=netloc, query=query).geturl()
    if MASK in result:
        raise MaskLeft("the URL still shows *** where no password is stored: type the real one")
    return result


def _unmask_netloc(new: str, old: str) -> str:
    userinfo, at, host = new.rpartition("@")
    old_userinfo = old.rpartition("@")[0]
    if not at or MASK not in userinfo or not old_userinfo:
        return new
    if userinfo == MASK:
        return f"{old_userinfo}@{host}"
    user, colon, password = userinfo.partition(":")
    old_password = old_userinfo.partition(":")[2]
    if colon and password == MASK and old_password:
        return f"{user}:{old_password}@{host}"
    return new


def _unmask_query(new: str, old: str) -> str:
    stored: dict[str, str] = {}
    for piece in old.split("&"):
        name, _, value = piece.partition("=")
        stored.setdefault(name, value)
    pieces = []
    for piece in new.split("&"):
        name, eq, value = piece.partition("=")
        if eq and value == MASK and name in stored:
            piece = f"{name}={stored[name]}"
        pieces.append(piece)
    return "&".join(pieces)


class RedactingFormatter(logging.Formatter):
    """Format with the handler's own formatter, then mask credentials in the whole line."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        """Return the inner formatter's line (message, exception, stack) with secrets masked."""
        return redact(self.inner.format(record))


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Mask credentials in everything ``logger``'s handlers write (the root logger's by default).

    Call it after logging is configured; a handler that already masks is left as it is.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
