"""scripts/install-hub and scripts/install-edge rendered into a folder (--root), checked by systemd.

The installation is rendered with --no-venv; the test then installs the copied code into a venv
of its own, non-editable, with pip (its dependencies come from this test run's environment
through a .pth file, so nothing is downloaded), and runs every entry point from it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.support.procs import ROOT
from tests.support.requirements import require

UNITS = ("nvr-recorder.service", "nvr-web.service", "nvr-edge@yard.service")
ENTRY_POINTS = ("nvr-recorder", "nvr-edge", "nvr-web")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=cwd,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both installations rendered into one root, plus a venv with the code installed."""
    root = tmp_path_factory.mktemp("root")
    token = root / "hub.token"
    token.write_text("edge-token\n")
    # an edge and a hub on one box: the edge's copy of the token is the one the hub then keeps
    edge = run(str(ROOT / "scripts" / "install-edge"), "--root", str(root), "--no-venv",
               "--hub", "192.0.2.10", "--instance", "yard", "--token-file", str(token))
    assert edge.returncode == 0, edge.stderr
    hub = run(str(ROOT / "scripts" / "install-hub"), "--root", str(root), "--no-venv")
    assert hub.returncode == 0, hub.stderr
    _install_code(root)
    return root


def _install_code(root: Path) -> None:
    venv = root / "opt" / "nvr" / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", str(venv)).returncode == 0
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the dependencies of this test run (not the code: that is what pip installs next)
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = run(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
               "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
               str(root / "opt" / "nvr" / "src"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rendered_unit_passes_systemd_analyze_verify(installed: Path) -> None:
    found = shutil.which("systemd-analyze") and SYSTEM_UNITS.is_dir()
    require(None if found else "systemd (systemd-analyze and /usr/lib/systemd/system)")
    # the targets the units order against (network-online.target, ...) come from this system
    shutil.copytree(SYSTEM_UNITS, installed / "usr" / "lib" / "systemd" / "system",
                    symlinks=True, dirs_exist_ok=True)
    for unit in UNITS:
        done = run("systemd-analyze", "verify", f"--root={installed}", unit)
        assert done.returncode == 0 and not done.stderr.strip(), f"{unit}:\n{done.stderr}"


def test_units_are_hardened_notify_services_with_a_watchdog(installed: Path) -> None:
    units = installed / "etc" / "systemd" / "system"
    recorder = (units / "nvr-recorder.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "User=nvr",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/nvr /var/lib/nvr/recordings",
                 "LimitNOFILE=65536", "StandardOutput=journal",
                 "ExecStart=/opt/nvr/venv/bin/nvr-recorder --config /etc/nvr/nvr.toml"):
        assert line in recorder.splitlines(), line
    web = (units / "nvr-web.service").read_text()
    assert "After=network-online.target nvr-recorder.service postgresql.service" in web
    assert "Requires=" not in web and "BindsTo=" not in web  # neither needs the other
    edge = (units / "nvr-edge@.service").read_text()
    assert "ExecStart=/opt/nvr/venv/bin/nvr-edge --config /etc/nvr/edge/%i.toml" in edge
    assert "Restart=always" in edge and "SupplementaryGroups=video" in edge


def test_rendered_config_files_pass_the_services_own_checks(installed: Path) -> None:
    etc = installed / "etc" / "nvr"
    token = str(etc / "ingest.token")
    # each service's own check-config, run as the units run it (the venv's entry points)
    checks = {"nvr-recorder": [str(etc / "nvr.toml"), "--token-file", token],
              "nvr-web": [str(etc / "nvr.toml")],
              "nvr-edge": [str(etc / "edge" / "yard.toml"), "--token-file", token,
                           "--spool-dir", "/tmp/spool"]}
    bin_dir = installed / "opt" / "nvr" / "venv" / "bin"
    for command, argv in checks.items():
        done = subprocess.run([str(bin_dir / command), "check-config", *argv], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env=_without_nvr_secrets())
        assert (done.returncode, done.stdout) == (0, f"{argv[0]}: ok\n"), f"{command}: {done.stderr}"
    hub = tomllib.loads((etc / "nvr.toml").read_text())
    assert hub["db"] == "sqlite:////var/lib/nvr/nvr.db" and hub["storage"] == "/var/lib/nvr/recordings"
    assert (hub["webapp"]["host"], hub["webapp"]["port"]) == ("0.0.0.0", 8080)
    edge = tomllib.loads((etc / "edge" / "yard.toml").read_text())
    assert (edge["hub"], edge["location"]) == ("192.0.2.10", "yard")
    assert (etc / "ingest.token").read_text().strip() == "edge-token"
    for secret in ("ingest.token", "nvr.toml", "recorder.env"):
        mode = stat.S_IMODE((etc / secret).stat().st_mode)
        assert mode & 0o007 == 0, f"{secret} is readable by others ({mode:o})"


def _without_nvr_secrets() -> dict[str, str]:
    """This environment without variables that would override the files being checked."""
    overriding = ("NVR_DB_URL", "NVR_INGEST_TOKEN", "NVR_SECRET_KEY", "SENDGRID_API_KEY",
                  "SENDGRID_API_HOST", "ALERT_EMAIL_TO", "ALERT_EMAIL_FROM")
    return {k: v for k, v in os.environ.items() if k not in overriding}


def test_a_second_run_keeps_the_admins_files(installed: Path) -> None:
    config = installed / "etc" / "nvr" / "nvr.toml"
    token = installed / "etc" / "nvr" / "ingest.token"
    config.write_text(config.read_text() + "\n# edited by the admin\n")
    before = token.read_text()
    again = run(str(ROOT / "scripts" / "install-hub"), "--root", str(installed), "--no-venv")
    assert again.returncode == 0, again.stderr
    assert "# edited by the admin" in config.read_text() and token.read_text() == before
    assert "kept /etc/nvr/nvr.toml" in again.stdout


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_each_entry_point_runs_from_the_installed_package(installed: Path, command: str,
                                                          tmp_path: Path) -> None:
    exe = installed / "opt" / "nvr" / "venv" / "bin" / command
    # cwd elsewhere: the checkout must not be what gets imported
    done = run(str(exe), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert os.access(exe, os.X_OK)


def test_a_fresh_hub_installation_generates_its_ingest_token(tmp_path: Path) -> None:
    done = run(str(ROOT / "scripts" / "install-hub"), "--root", str(tmp_path), "--no-venv")
    assert done.returncode == 0, done.stderr
    token = tmp_path / "etc" / "nvr" / "ingest.token"
    assert len(token.read_text().strip()) >= 40
    assert stat.S_IMODE(token.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "var" / "lib" / "nvr").stat().st_mode) == 0o750


APP_CHECK = """
import sys, webapp
from webapp import create_app
assert webapp.__file__.startswith(sys.prefix), webapp.__file__  # the installed copy, not the checkout
app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1], "STORAGE_ROOT": sys.argv[2],
                  "SECRET_KEY": "x" * 32})
client = app.test_client()
for path in ("/auth/login", "/static/vendor/bootstrap/bootstrap.min.css",
             "/static/vendor/hls/hls.min.js"):
    status = client.get(path).status_code
    assert status == 200, (path, status)
print("web app ok")
"""


def test_the_installed_package_migrates_a_catalog_and_serves_its_pages(installed: Path,
                                                                       tmp_path: Path) -> None:
    # a non-editable install must carry its data: migrations, templates, static and vendored files
    venv = installed / "opt" / "nvr" / "venv" / "bin"
    url = f"sqlite:///{tmp_path / 'nvr.db'}"
    migrated = run(str(venv / "nvr-recorder"), "migrate", "--db", url, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "is at revision" in migrated.stdout
    served = run(str(venv / "python"), "-c", APP_CHECK, url, str(tmp_path / "rec"), cwd=tmp_path)
    assert served.returncode == 0 and "web app ok" in served.stdout, served.stderr


def test_install_edge_with_faces_turns_them_on_in_a_config_the_edge_accepts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = run(str(ROOT / "scripts" / "install-edge"), "--root", str(root), "--no-venv",
               "--hub", "192.0.2.10", "--instance", "door", "--faces")
    assert done.returncode == 0, done.stderr
    config = root / "etc" / "nvr" / "edge" / "door.toml"
    assert tomllib.loads(config.read_text())["faces"] is True
    token = tmp_path / "token"
    token.write_text("edge-token\n")
    check = run(sys.executable, "-m", "edge", "check-config", str(config), "--token-file",
                str(token), "--spool-dir", str(tmp_path / "spool"), cwd=ROOT)
    assert (check.returncode, check.stdout) == (0, f"{config}: ok\n"), check.stderr
