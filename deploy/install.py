#!/usr/bin/env python3
"""Install the NVR hub or an edge as systemd services (scripts/install-hub, scripts/install-edge).

Run as root on Debian/Ubuntu. Idempotent: a second run updates the code and the units and
keeps every config file, token and recording. With ``--root DIR`` the whole installation is
rendered into DIR instead (like DESTDIR): nothing outside DIR is touched, no user is created,
no service is started. That is how tests/e2e/test_install.py checks it.

Standard library only: it runs with the system's python3 before any venv exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import grp
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent  # the checkout being installed
TEMPLATES = SOURCE / "deploy"
INSTANCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_PYTHON = (3, 11)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything goes, relative to ``root`` ("/" for a real installation)."""

    root: Path
    prefix: Path  # /opt/nvr: venv/ and src/
    config_dir: Path  # /etc/nvr
    data_dir: Path  # /var/lib/nvr (hub) or /var/lib/nvr-edge (edge)
    storage: Path  # recordings (hub only)
    user: str

    @property
    def real(self) -> bool:
        """Tell whether this installs onto the running system (not into a --root folder)."""
        return self.root == Path("/")

    def on_disk(self, path: Path) -> Path:
        """Return where ``path`` of the installed system is written now."""
        return self.root / path.relative_to("/")

    def substitutions(self, **extra: str) -> dict[str, str]:
        """The @NAME@ values the templates are rendered with."""
        return {"PREFIX": str(self.prefix), "CONFIG_DIR": str(self.config_dir),
                "DATA_DIR": str(self.data_dir), "STORAGE": str(self.storage),
                "USER": self.user, **extra}


def render(template: Path, values: dict[str, str]) -> str:
    """Fill a template's @NAME@ placeholders; an unknown placeholder is an error."""
    text = template.read_text(encoding="utf-8")

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise SystemExit(f"install: {template.name}: no value for @{match.group(1)}@")
        return values[match.group(1)]

    return re.sub(r"@([A-Z_]+)@", value, text)


class Installer:
    """The steps of an installation, each safe to repeat."""

    def __init__(self, layout: Layout, venv: bool, start: bool) -> None:
        self.layout, self.venv, self.start = layout, venv, start

    def say(self, message: str) -> None:
        """Print one step."""
        print(f"install: {message}", flush=True)

    def run(self, *argv: str) -> None:
        """Run a command (never through a shell), failing loudly."""
        self.say("$ " + " ".join(argv))
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)

    def system_user(self, groups: tuple[str, ...] = ()) -> None:
        """Create the service's system user (no login, no home outside its data folder)."""
        name = self.layout.user
        if not self.layout.real:
            self.say(f"would create the system user {name!r} (skipped under --root)")
            return
        try:
            pwd.getpwnam(name)
            self.say(f"system user {name!r} exists")
        except KeyError:
            self.run("useradd", "--system", "--user-group", "--home-dir",
                     str(self.layout.data_dir), "--no-create-home", "--shell",
                     "/usr/sbin/nologin", name)
        for group in groups:
            try:
                grp.getgrnam(group)
            except KeyError:
                continue
            self.run("usermod", "--append", "--groups", group, name)

    def folder(self, path: Path, mode: int, owned: bool) -> None:
        """Create a folder with a mode; owned by the service user (else root) on a real system."""
        target = self.layout.on_disk(path)
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, mode)
        self._chown(target, owned)

    def _chown(self, target: Path, owned: bool) -> None:
        if not self.layout.real:
            return
        user = pwd.getpwnam(self.layout.user)
        os.chown(target, user.pw_uid if owned else 0, user.pw_gid)

    def code(self, edge_only: bool = False, faces: bool = False) -> None:
        """Copy this checkout to PREFIX/src and install it into PREFIX/venv (not editable).

        The hub gets requirements.txt; an edge only requirements-edge.txt, from wheels only
        (a Raspberry Pi must not start compiling OpenCV), and the code without the hub's deps;
        ``faces`` adds requirements-edge-faces.txt (dlib and its models, also wheels only).
        """
        source = self.layout.on_disk(self.layout.prefix / "src")
        if source.exists():
            shutil.rmtree(source)
        shutil.copytree(SOURCE, source, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "data", "__pycache__", "*.egg-info", ".pytest_cache", "build"))
        self.say(f"copied the code to {source}")
        if not self.venv:
            self.say("skipped the venv (--no-venv)")
            return
        venv = self.layout.on_disk(self.layout.prefix / "venv")
        if not (venv / "bin" / "python").exists():
            self.run(sys.executable, "-m", "venv", str(venv))
        self.run(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                 "--upgrade", "pip")
        pip = (str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet")
        if edge_only:
            lists = ["requirements-edge.txt"] + (["requirements-edge-faces.txt"] if faces else [])
            self.run(*pip, "--only-binary=:all:", *[arg for name in lists
                                                    for arg in ("-r", str(source / name))])
            self.run(*pip, "--no-deps", str(source))
        else:
            self.run(*pip, "-r", str(source / "requirements.txt"), str(source))

    def config_file(self, path: Path, text: str, mode: int = 0o640) -> None:
        """Write a config file once: an existing one is the admin's and is kept."""
        target = self.layout.on_disk(path)
        if target.exists():
            self.say(f"kept {path}")
            return
        target.write_text(text, encoding="utf-8")
        os.chmod(target, mode)
        self._chown(target, owned=False)  # root-owned, readable by the service's group
        self.say(f"wrote {path}")

    def secret_file(self, path: Path) -> None:
        """Generate a random token into ``path`` once (mode 0640, root:group)."""
        self.config_file(path, secrets.token_urlsafe(32) + "\n")

    def unit(self, name: str, values: dict[str, str]) -> None:
        """Render a systemd unit (always: units follow the code)."""
        folder = self.layout.on_disk(Path("/etc/systemd/system"))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        target.write_text(render(TEMPLATES / "systemd" / f"{name}.in", values), encoding="utf-8")
        os.chmod(target, 0o644)
        self.say(f"wrote /etc/systemd/system/{name}")

    def enable(self, *units: str) -> None:
        """Reload systemd and enable (and start, unless --no-start) the units."""
        if not self.layout.real:
            self.say(f"would enable {' '.join(units)} (skipped under --root)")
            return
        self.run("systemctl", "daemon-reload")
        self.run("systemctl", "enable", *(["--now"] if self.start else []), *units)
        if self.start:  # a running service keeps its old code until restarted
            self.run("systemctl", "restart", *units)


def install_hub(args: argparse.Namespace) -> None:
    """Install the hub (nvr-recorder.service) and the web app (nvr-web.service)."""
    layout = _layout(args, user=args.user or "nvr", data=args.data_dir or "/var/lib/nvr")
    steps = Installer(layout, venv=not args.no_venv, start=not args.no_start)
    steps.system_user()
    steps.folder(layout.prefix, 0o755, owned=False)
    steps.folder(layout.config_dir, 0o750, owned=False)
    steps.folder(layout.data_dir, 0o750, owned=True)
    steps.folder(layout.storage, 0o750, owned=True)
    steps.code()
    values = layout.substitutions()
    steps.config_file(layout.config_dir / "nvr.toml",
                      render(TEMPLATES / "config" / "nvr.toml.in", values))
    steps.secret_file(layout.config_dir / "ingest.token")
    steps.config_file(layout.config_dir / "recorder.env",
                      "# Secrets of the hub (they beat nvr.toml), e.g.\n# SENDGRID_API_KEY=SG.xxxx\n"
                      "# NVR_DB_URL=postgresql+psycopg://nvr:PASSWORD@HOST/nvr\n")
    steps.config_file(layout.config_dir / "web.env",
                      "# Secrets of the web app (they beat nvr.toml; none needed), e.g.\n"
                      "# NVR_DB_URL=postgresql+psycopg://nvr:PASSWORD@HOST/nvr\n"
                      "# NVR_SECRET_KEY=(openssl rand -hex 32)\n")
    for unit in ("nvr-recorder.service", "nvr-web.service"):
        steps.unit(unit, values)
    steps.enable("nvr-recorder.service", "nvr-web.service")
    steps.say(f"done. Edges need the token in {layout.config_dir / 'ingest.token'}; the web app "
              "prints its first admin login once: journalctl -u nvr-web")


def install_edge(args: argparse.Namespace) -> None:
    """Install an edge (nvr-edge@INSTANCE.service) pushing to ``--hub``."""
    if not INSTANCE_RE.fullmatch(args.instance):
        raise SystemExit(f"install: --instance {args.instance!r}: letters, digits, . _ - only")
    layout = _layout(args, user=args.user or "nvr-edge", data=args.data_dir or "/var/lib/nvr-edge")
    steps = Installer(layout, venv=not args.no_venv, start=not args.no_start)
    steps.system_user(groups=("video",))
    steps.folder(layout.prefix, 0o755, owned=False)
    steps.folder(layout.config_dir, 0o750, owned=False)
    steps.folder(layout.config_dir / "edge", 0o750, owned=False)
    steps.folder(layout.data_dir, 0o750, owned=True)
    steps.code(edge_only=True, faces=args.faces)
    values = layout.substitutions(INSTANCE=args.instance, HUB=args.hub,
                                  FACES="true" if args.faces else "false")
    steps.config_file(layout.config_dir / "edge" / f"{args.instance}.toml",
                      render(TEMPLATES / "config" / "edge.toml.in", values))
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8")
        steps.config_file(layout.config_dir / "ingest.token", token)
    steps.unit("nvr-edge@.service", values)
    steps.enable(f"nvr-edge@{args.instance}.service")


def _layout(args: argparse.Namespace, user: str, data: str) -> Layout:
    if sys.version_info < MIN_PYTHON:
        raise SystemExit("install: needs Python 3.11 or newer")
    root = Path(args.root).resolve()
    if root == Path("/") and os.geteuid() != 0:
        raise SystemExit("install: run as root (sudo), or render into a folder with --root DIR")
    data_dir = Path(data)
    storage = Path(getattr(args, "storage", None) or data_dir / "recordings")
    for path in (Path(args.prefix), Path(args.config_dir), data_dir, storage):
        if not path.is_absolute():
            raise SystemExit(f"install: {path} must be an absolute path")
    return Layout(root, Path(args.prefix), Path(args.config_dir), data_dir, storage, user)


def parser() -> argparse.ArgumentParser:
    """The command line of both install scripts."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default="/", help="render the installation into this folder "
                        "instead of the system (nothing else is touched)")
    common.add_argument("--prefix", default="/opt/nvr", help="code and venv (/opt/nvr)")
    common.add_argument("--config-dir", default="/etc/nvr", help="config files (/etc/nvr)")
    common.add_argument("--data-dir", help="service data (/var/lib/nvr or /var/lib/nvr-edge)")
    common.add_argument("--user", help="system user of the service (nvr or nvr-edge)")
    common.add_argument("--no-venv", action="store_true", help="copy the code, skip the venv")
    common.add_argument("--no-start", action="store_true", help="enable the units, do not start")
    p = argparse.ArgumentParser(prog="install", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    hub = sub.add_parser("hub", parents=[common], help="the hub and the web app")
    hub.add_argument("--storage", help="recordings folder (DATA_DIR/recordings)")
    edge = sub.add_parser("edge", parents=[common], help="an edge")
    edge.add_argument("--hub", required=True, help="the hub's host name or IP address")
    edge.add_argument("--instance", default="default",
                      help="instance name: /etc/nvr/edge/NAME.toml, nvr-edge@NAME.service")
    edge.add_argument("--token-file", help="a copy of the hub's ingest token to install")
    edge.add_argument("--faces", action="store_true", help="also install face recognition "
                      "(requirements-edge-faces.txt, ~130 MB) and turn it on (faces = true)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Install what the command line says."""
    args = parser().parse_args(argv)
    (install_hub if args.what == "hub" else install_edge)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
