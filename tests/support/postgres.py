"""A throwaway PostgreSQL cluster for tests, run from Debian's server binaries.

``postgres_cluster()`` makes a cluster in a fresh temporary folder (``initdb``), runs
``postgres`` on 127.0.0.1 on a free port with its unix socket inside that folder, creates a
database and yields its SQLAlchemy URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/DB``).
The server is always stopped (``pg_ctl stop -m fast``, bounded, then SIGKILL) and the folder
removed, however the block ends. Nothing touches the system's own PostgreSQL service.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` system user (created by Debian's package), or ``nobody``, through ``setpriv``.
Authentication is ``trust``: only this machine's loopback and the private socket reach it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import free_port

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
# A zone far from UTC, so a catalog that loses or misreads the offset is caught.
DEFAULT_TIMEZONE = "America/New_York"
_TOOLS = ("initdb", "pg_ctl", "postgres")
_RUN_AS = ("postgres", "nobody")


def bin_dir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` holding the server tools."""
    if not PG_ROOT.is_dir():
        return None
    candidates = []
    for entry in PG_ROOT.iterdir():
        numbers = re.findall(r"\d+", entry.name)
        if numbers and all((entry / "bin" / tool).is_file() for tool in _TOOLS):
            candidates.append((tuple(int(n) for n in numbers), entry / "bin"))
    return max(candidates)[1] if candidates else None


def _run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as (None: run as the current user)."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise LookupError(f"running as root and none of the users {_RUN_AS} exists")


def postgres_unavailable_reason() -> str | None:
    """Say why a throwaway cluster cannot be started here, or None when it can."""
    if bin_dir() is None:
        return (f"PostgreSQL server binaries ({', '.join(_TOOLS)}) not found under "
                f"{PG_ROOT}/<version>/bin: run scripts/install-test-deps.sh")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed: pip install -r requirements.txt"
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            return "running as root and setpriv (util-linux) is missing"
        try:
            _run_as_user()
        except LookupError as exc:
            return str(exc)
    return None


def postgres_available() -> bool:
    """Tell whether ``postgres_cluster()`` can run here."""
    return postgres_unavailable_reason() is None


def _as_user(argv: list[str], user: pwd.struct_passwd | None) -> list[str]:
    if user is None:
        return argv
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--", *argv]


def _env(home: Path) -> dict[str, str]:
    # No PG* variables of the caller leak in (PGHOST, PGPORT, PGDATA ... would redirect tools),
    # and HOME is a folder the server's user can read.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", HOME=str(home))
    return env


def _chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def url_for(port: int, dbname: str) -> str:
    """The SQLAlchemy URL of a database of a cluster on 127.0.0.1:``port``."""
    return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{dbname}"


def _connect(port: int, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname=dbname,
                           connect_timeout=2, autocommit=True)


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the cluster of ``url``; return its URL."""
    from psycopg import sql
    from sqlalchemy.engine import make_url

    port = make_url(url).port
    assert port is not None, url
    with _connect(port) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_for(port, name)


class _Server:
    """One run of ``postgres`` on a data folder; stopped by ``stop()``, whatever happened."""

    def __init__(self, bins: Path, data: Path, sockets: Path, log: Path, port: int,
                 user: pwd.struct_passwd | None, timezone: str) -> None:
        self.bins, self.data, self.log, self.port, self.user = bins, data, log, port, user
        argv = [str(bins / "postgres"), "-D", str(data),
                "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
                "-c", f"unix_socket_directories={sockets}",
                "-c", f"timezone={timezone}",
                # a throwaway cluster: durability buys nothing here, speed does
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=40", "-c", "shared_buffers=16MB"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(_as_user(argv, user), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, env=_env(data.parent),
                                         start_new_session=True)

    def wait_ready(self, timeout: float) -> None:
        """Connect in a loop until the server answers; fail early if it exits."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}) while starting:\n"
                                   f"{_tail(self.log)}")
            try:
                with _connect(self.port) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready after {timeout:g} s ({exc}):\n"
                                       f"{_tail(self.log)}") from exc
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """``pg_ctl stop -m fast`` within ``timeout``, then SIGKILL of the server's group."""
        if self.proc.poll() is None:
            argv = [str(self.bins / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast",
                    "-w", "-t", f"{int(timeout)}"]
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(_as_user(argv, self.user), env=_env(self.data.parent), timeout=timeout + 5,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@contextlib.contextmanager
def postgres_cluster(dbname: str = "nvr", timezone: str = DEFAULT_TIMEZONE,
                     ready_timeout: float = 30.0) -> Iterator[str]:
    """Run a throwaway cluster; yield the SQLAlchemy URL of a fresh database ``dbname``."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    bins = bin_dir()
    assert bins is not None
    user = _run_as_user()
    # Under the system temp folder (not pytest's root-only tmp_path): the server's user must
    # be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="nvr-pg-"))
    server: _Server | None = None
    try:
        data, sockets, log = root / "data", root / "sock", root / "postgres.log"
        sockets.mkdir()
        log.touch()
        _chown_tree(root, user)
        initdb = [str(bins / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        result = subprocess.run(_as_user(initdb, user), env=_env(root), cwd=root, timeout=60,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            server = _Server(bins, data, sockets, log, free_port(), user, timezone)
            try:
                server.wait_ready(ready_timeout)
                break
            except RuntimeError:
                server.stop()
                if attempt == 2 or "Address already in use" not in _tail(log):
                    raise
        assert server is not None
        yield create_database(url_for(server.port, "postgres"), dbname)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
