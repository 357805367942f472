"""A self-signed certificate for 127.0.0.1 and localhost, made with the openssl command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def openssl_missing() -> str | None:
    """Why no certificate can be made here, or None."""
    return None if shutil.which("openssl") else "the openssl command is missing"


def self_signed(folder: Path, name: str = "web") -> tuple[Path, Path]:
    """Write ``name``.crt and ``name``.key (unencrypted, 0600) into ``folder``; return both."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return cert, key
