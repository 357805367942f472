"""TLS on the ingest port: the server context, and a handshake bounded like a request head.

The handshake runs inside the connection's own task (StreamWriter.start_tls) rather than in
asyncio's listener, so a connection is counted by the ConnectionGuard while it shakes hands,
a handshake that never completes ends at ``head_timeout``, and a failure (garbage, a plain
HTTP client on the TLS port) is one clear, rate-limited log line.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from recorder.errors import ConfigError

logger = logging.getLogger(__name__)


class HandshakeFailed(Exception):
    """The TLS handshake with an ingest client failed; the message says why."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Load the hub's certificate chain and key into a TLS 1.2+ server context."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls_cert / tls_key: cannot load {cert} and {key}: "
                          f"{getattr(exc, 'reason', None) or exc}") from None
    return context


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    context: ssl.SSLContext, timeout: float) -> None:
    """Upgrade a fresh connection to TLS within ``timeout``, or raise HandshakeFailed."""
    if reader._buffer:  # type: ignore[attr-defined]  # bytes read as plain text would be lost
        raise HandshakeFailed("sent bytes before the TLS handshake began")
    try:
        async with asyncio.timeout(timeout):
            await writer.start_tls(context, ssl_handshake_timeout=timeout)
    except TimeoutError:
        raise HandshakeFailed(f"did not complete the TLS handshake within {timeout:g} s") from None
    except ssl.SSLError as exc:
        hint = " (plain HTTP on the TLS port?)" if exc.reason == "HTTP_REQUEST" else ""
        raise HandshakeFailed(f"failed the TLS handshake: {exc.reason or exc}{hint}") from None
    except (ConnectionError, OSError) as exc:
        raise HandshakeFailed(f"went away during the TLS handshake: {exc or type(exc).__name__}"
                              ) from None
