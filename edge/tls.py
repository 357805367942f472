"""TLS to the hub: verify its certificate against the system CAs, a CA file, or a pinned hash.

A pin (``sha256:HEX`` of the hub certificate's DER bytes) fits a hub with a self-signed
certificate: nothing else is trusted, and the host name is not checked (the pin says more).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import socket
import ssl
from pathlib import Path

from .errors import ConfigError, HubTlsError, HubUnreachable

_PIN_RE = re.compile(r"sha256:([0-9a-fA-F:]{64,95})")


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """How the edge checks the hub's certificate (``--tls``, ``--ca``, ``--pin``)."""

    ca_file: Path | None = None
    pin: bytes | None = None  # SHA-256 of the certificate (DER)

    def context(self) -> ssl.SSLContext:
        """Build the client context: system CAs, the CA file, or no chain check (pinned)."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.pin is not None:  # the pin is checked after the handshake (check_pin)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse_pin(text: str) -> bytes:
    """Parse ``sha256:HEX`` (colons between byte pairs allowed) into 32 bytes."""
    match = _PIN_RE.fullmatch(text.strip())
    digits = match.group(1).replace(":", "") if match else ""
    if len(digits) != 64:
        raise ConfigError(f"--pin {text!r}: expected sha256: and 64 hex digits "
                          "(openssl x509 -noout -fingerprint -sha256 -in hub.crt)")
    return bytes.fromhex(digits)


def fingerprint(der: bytes) -> str:
    """The ``sha256:HEX`` pin of a certificate in DER form."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def wrap(sock: socket.socket, settings: TlsSettings, host: str, where: str) -> ssl.SSLSocket:
    """Run the TLS handshake on a connected socket; raise HubTlsError if the hub is not trusted."""
    try:
        tls = settings.context().wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise HubTlsError(f"the certificate of {where} is not trusted: "
                          f"{exc.verify_message or exc.reason}") from None
    except ssl.SSLError as exc:
        sock.close()
        raise HubTlsError(f"TLS handshake with {where} failed: {exc.reason or exc} "
                          "(is the hub's port TLS?)") from None
    except OSError as exc:  # a timeout or a reset during the handshake: the network's fault
        sock.close()
        raise HubUnreachable(f"TLS handshake with {where} failed: "
                             f"{exc.strerror or type(exc).__name__}") from None
    if settings.pin is not None:
        check_pin(tls, settings.pin, where)
    return tls


def check_pin(tls: ssl.SSLSocket, pin: bytes, where: str) -> None:
    """Compare the hub certificate's SHA-256 with the pin; close and raise if they differ."""
    der = tls.getpeercert(binary_form=True) or b""
    if not hmac.compare_digest(hashlib.sha256(der).digest(), pin):
        tls.close()
        raise HubTlsError(f"the certificate of {where} does not match --pin: it is "
                          f"{fingerprint(der)}, expected sha256:{pin.hex()}")
