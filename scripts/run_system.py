"""Run the whole system on the embedded defaults: hub, web app and two synthetic test cameras.

Started by scripts/run.sh (which sets up .venv first). Stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_token(path: Path) -> None:
    """Create the shared ingest token once, readable only by the owner."""
    if path.exists() and path.read_text().strip():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the hub accepts connections (or fail if it exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the hub exited with status {process.returncode}; see its log above")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"the hub did not listen on port {port} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM a child and wait for it (SIGKILL after the timeout)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    """Start hub, web app and edges, print where things are, and wait for a stop signal."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="data", help="folder for footage and catalog")
    parser.add_argument("--port", type=int, default=1025, help="the hub's ingest port")
    parser.add_argument("--web-port", type=int, default=8080, help="the web app's port")
    parser.add_argument("--segment-seconds", type=float, default=10)
    args = parser.parse_args()
    data = Path(args.data).resolve()
    token_file = data / "ingest.token"
    ensure_token(token_file)
    python = sys.executable
    hub = subprocess.Popen([python, "-m", "recorder", "--listen", f"0.0.0.0:{args.port}",
                            "--storage", str(data / "recordings"), "--db", f"sqlite:///{data}/nvr.db",
                            "--segment-seconds", f"{args.segment_seconds:g}",
                            "--token-file", str(token_file)], cwd=ROOT)
    webapp = subprocess.Popen([python, "-m", "webapp", "serve", "--ensure-admin",
                               "--host", "0.0.0.0", "--port", str(args.web_port),
                               "--db", f"sqlite:///{data}/nvr.db",
                               "--storage", str(data / "recordings")], cwd=ROOT)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    edge = None
    try:
        wait_for_port(args.port, hub)
        edge = subprocess.Popen([python, "-m", "edge", "--hub", "127.0.0.1", "--port", str(args.port),
                                 "--location", "demo", "--camera", "test", "--name", "demo-test-1",
                                 "--camera", "test", "--name", "demo-test-2",
                                 "--token-file", str(token_file),
                                 # beside the footage it belongs to: another data folder's demo
                                 # (another clone) does not back-fill into this one
                                 "--spool-dir", str(data / "edge-spool")], cwd=ROOT)
        print(f"\nNVR running. Ingest: 0.0.0.0:{args.port} (token in {token_file})\n"
              f"  footage: {data / 'recordings'}\n  catalog: sqlite:///{data}/nvr.db\n"
              f"  the demo edge's spool: {data / 'edge-spool'}\n"
              "  cameras: demo-test-1, demo-test-2 (synthetic); segments are logged as they close.\n"
              "  Press Ctrl-C to stop.\n", flush=True)
        while not stopping and hub.poll() is None and webapp.poll() is None:
            time.sleep(0.5)
    finally:
        if not stopping:  # say why everything stops (under systemd each unit would restart)
            gone = "the hub" if hub.poll() is not None else "the web app"
            code = hub.poll() if hub.poll() is not None else webapp.poll()
            print(f"\n{gone} exited (status {code}): stopping the rest; footage recorded so far "
                  "is kept, and the edges' spools upload the rest at the next start",
                  file=sys.stderr, flush=True)
        if edge is not None:
            stop(edge)
        stop(webapp)
        stop(hub)
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
