"""Email delivery through the SendGrid v3 API (the ``sendgrid`` package), one bounded request at a time."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import logging
from collections.abc import Sequence

import python_http_client
import sendgrid
from sendgrid.helpers.mail import (
    Attachment as MailAttachment, Category, CustomArg, Disposition, FileContent, FileName,
    FileType, Mail, To,
)

from recorder.config import AlertsConfig

logger = logging.getLogger(__name__)

ERROR_TEXT_MAX = 2000  # of a SendGrid error body kept in Alert.last_error


@dataclasses.dataclass(frozen=True)
class Attachment:
    """A file sent with an alert email (a motion event's snapshot)."""

    filename: str
    content_type: str
    data: bytes = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One alert email, ready to send."""

    alert_id: int
    kind: str
    camera: str | None
    subject: str
    body: str
    recipients: tuple[str, ...]
    attachments: tuple[Attachment, ...] = ()


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What became of one send: ``sent``, ``retry`` (SendGrid may take it later) or ``failed``."""

    outcome: str
    status: int | None = None
    error: str = ""


class _HideAuthorization(logging.Filter):
    """Drop python_http_client's DEBUG line that prints the request headers (the API key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record except the one that dumps the headers."""
        return not str(record.msg).startswith("HEADERS:")


_HIDE_AUTHORIZATION = _HideAuthorization()


def hide_api_key_in_client_logs() -> None:
    """Make sure the HTTP client under sendgrid never logs the Authorization header."""
    client_logger = logging.getLogger("python_http_client.client")
    if _HIDE_AUTHORIZATION not in client_logger.filters:
        client_logger.addFilter(_HIDE_AUTHORIZATION)


def build_mail(email_from: str, outgoing: Outgoing) -> Mail:
    """Build the SendGrid message: every recipient in one personalization, plain text, and the
    attachments if any."""
    mail = Mail(from_email=email_from, to_emails=[To(address) for address in outgoing.recipients],
                subject=outgoing.subject, plain_text_content=outgoing.body)
    args = {"alert_id": str(outgoing.alert_id), "kind": outgoing.kind}
    if outgoing.camera:
        args["camera"] = outgoing.camera
    for key, value in args.items():
        mail.add_custom_arg(CustomArg(key, value))
    # add_category prepends, so add in reverse to send ["nvr-alert", kind]
    for category in (outgoing.kind, "nvr-alert"):
        mail.add_category(Category(category))
    # the v3 API takes each file base64-encoded in the JSON body ("attachments")
    for attachment in outgoing.attachments:
        mail.add_attachment(MailAttachment(
            FileContent(base64.b64encode(attachment.data).decode("ascii")),
            FileName(attachment.filename), FileType(attachment.content_type),
            Disposition("attachment")))
    return mail


def retryable_status(status: int) -> bool:
    """Tell whether SendGrid may accept the same request later (rate limit or server trouble)."""
    return status == 429 or status >= 500


class Mailer:
    """Sends alert emails through SendGrid; every request is bounded by ``send_timeout``."""

    def __init__(self, config: AlertsConfig) -> None:
        if not config.api_key:
            raise ValueError("a Mailer needs a SendGrid API key")
        hide_api_key_in_client_logs()
        self._api_key = config.api_key
        self._email_from = config.email_from
        self._timeout = config.send_timeout
        self.host = config.api_host
        self._client = sendgrid.SendGridAPIClient(api_key=config.api_key, host=config.api_host)
        # python_http_client copies ``timeout`` into each sub-client it builds for a URL
        # segment (client.mail.send), and urllib applies it to connect and every read.
        self._client.client.timeout = config.send_timeout

    def send(self, outgoing: Outgoing, timeout: float | None = None) -> Delivery:
        """Send one email; never raises for a network or API error, it returns the outcome."""
        if not outgoing.recipients:
            return Delivery("failed", None, "no recipients configured")
        limit = self._timeout if timeout is None else max(min(timeout, self._timeout), 0.05)
        message = build_mail(self._email_from, outgoing).get()
        try:
            response = self._client.client.mail.send.post(request_body=message, timeout=limit)
        except python_http_client.HTTPError as exc:
            return self._http_error(exc)
        except TimeoutError:
            return Delivery("retry", None, f"SendGrid did not answer within {limit:g} s")
        except (OSError, http.client.HTTPException) as exc:
            return Delivery("retry", None, self._scrub(f"cannot reach {self.host}: {_reason(exc)}"))
        if 200 <= response.status_code < 300:
            return Delivery("sent", response.status_code)
        return Delivery("retry", response.status_code, f"unexpected HTTP {response.status_code}")

    def _http_error(self, exc: python_http_client.HTTPError) -> Delivery:
        status = int(exc.status_code)
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
        error = self._scrub(f"HTTP {status} {exc.reason}: {body.strip()}"[:ERROR_TEXT_MAX])
        return Delivery("retry" if retryable_status(status) else "failed", status, error)

    def _scrub(self, text: str) -> str:
        # an error never carries the key today; this keeps it so if a library starts echoing it
        return text.replace(self._api_key, "[API key]")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # urllib's URLError wraps the socket error
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason if reason is not None else exc) or type(exc).__name__


def recipients_text(recipients: Sequence[str]) -> str:
    """Join recipients the way Alert.recipients stores them."""
    return ",".join(recipients)
