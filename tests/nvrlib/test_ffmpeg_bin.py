"""Which ffmpeg runs: $NVR_FFMPEG, else the config file's key, else the wheel's pinned build."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

from nvrlib import ffmpeg_bin
from recorder.config import build_config, load_file
from recorder.errors import ConfigError
from tests.support.ffmpegs import build
from tests.support.procs import Hub, LoggedProcess, hub_environment
from webapp.cli import main as web_main
from webapp.config import settings_from

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_choice_made(monkeypatch: pytest.MonkeyPatch,
                   ffmpeg_under_test: str | None) -> Iterator[None]:
    """Start each test (but a both_ffmpegs one) with no $NVR_FFMPEG and no configured path."""
    if ffmpeg_under_test is None:
        monkeypatch.delenv(ffmpeg_bin.ENVIRONMENT, raising=False)
    ffmpeg_bin.configure(None)
    yield
    ffmpeg_bin.configure(None)


def test_by_default_the_pinned_wheel_runs_even_with_a_system_ffmpeg_on_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "ffmpeg"
    system.write_text("#!/bin/sh\nexit 0\n")
    system.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    ffmpeg_bin.configure(None)
    assert ffmpeg_bin.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    assert "(the imageio-ffmpeg wheel's)" in ffmpeg_bin.describe_ffmpeg()


def test_the_config_key_is_used_and_the_environment_beats_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    debian = build("debian")
    ffmpeg_bin.configure(debian)
    assert ffmpeg_bin.ffmpeg_exe() == debian
    assert ffmpeg_bin.describe_ffmpeg().endswith(f"at {debian} (the config file's ffmpeg key)")
    assert ffmpeg_bin.ffmpeg_version().startswith("5.1")
    monkeypatch.setenv(ffmpeg_bin.ENVIRONMENT, "/opt/other/ffmpeg")
    ffmpeg_bin.configure(debian)
    assert ffmpeg_bin.ffmpeg_exe() == "/opt/other/ffmpeg"
    assert "($NVR_FFMPEG)" in ffmpeg_bin.describe_ffmpeg()


@pytest.mark.parametrize("value", ["ffmpeg", "/nonexistent/ffmpeg", "NOT_EXECUTABLE", "/", 5])
def test_a_bad_ffmpeg_key_is_refused_naming_the_key(value: object, tmp_path: Path) -> None:
    if value == "NOT_EXECUTABLE":
        value = tmp_path / "ffmpeg"
        value.write_text("")
        value.chmod(0o644)
        value = str(value)
    with pytest.raises(ConfigError, match=r"^ffmpeg: expected the absolute path"):
        build_config({"ffmpeg": value}, {})


def test_the_hub_and_the_web_app_read_the_key_from_the_one_file(tmp_path: Path) -> None:
    debian = build("debian")
    path = tmp_path / "nvr.toml"
    path.write_text(f'ffmpeg = "{debian}"\n[webapp]\nport = 8080\n')
    assert build_config(load_file(path), {}).ffmpeg == debian
    assert settings_from(path, {})["ffmpeg"] == debian
    assert settings_from(None, {})["ffmpeg"] is None


def test_the_hub_logs_at_start_the_ffmpeg_its_file_names(tmp_path: Path) -> None:
    debian = build("debian")
    hub = Hub(tmp_path, config=f'ffmpeg = "{debian}"\n')
    try:
        hub.start()
        assert hub.process is not None
        line = hub.process.wait_line(r"ffmpeg (\S+) at (\S+) \((.*)\)")
        assert line.groups() == (ffmpeg_bin_version(debian), debian, "the config file's ffmpeg key")
    finally:
        if hub.process is not None:
            hub.stop()


def test_the_web_app_logs_at_start_the_ffmpeg_the_hubs_file_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    debian = build("debian")
    config = tmp_path / "nvr.toml"
    config.write_text(f'ffmpeg = "{debian}"\ndb = "sqlite:///{tmp_path}/nvr.db"\n'
                      f'storage = "{tmp_path}/recordings"\n')
    web = LoggedProcess([sys.executable, "-m", "webapp", "serve", "--config", str(config),
                         "--host", "127.0.0.1", "--port", "0"], cwd=ROOT,
                        env=hub_environment({}))
    try:
        line = web.wait_line(r"ffmpeg \S+ at (\S+) \((.*)\)", timeout=60)
        assert line.groups() == (debian, "the config file's ffmpeg key")
        assert web.terminate(timeout=20) == 0
    finally:
        if web.proc.poll() is None:
            web.kill_group()
    config.write_text('ffmpeg = "/nonexistent/ffmpeg"\n')
    assert web_main(["serve", "--config", str(config)]) == 2
    assert "ffmpeg: expected the absolute path" in capsys.readouterr().err


@pytest.mark.both_ffmpegs
def test_a_both_ffmpegs_test_runs_its_build_here_and_in_the_hubs_it_starts(
        ffmpeg_under_test: str) -> None:
    """The marker's fixture: $NVR_FFMPEG names the build, and this process runs it too."""
    assert ffmpeg_under_test in ("wheel", "debian")
    assert hub_environment({})[ffmpeg_bin.ENVIRONMENT] == build(ffmpeg_under_test)
    assert ffmpeg_bin.ffmpeg_exe() == build(ffmpeg_under_test)
    expected = "5.1" if ffmpeg_under_test == "debian" else "n9."
    assert ffmpeg_bin.ffmpeg_version().startswith(expected)


def ffmpeg_bin_version(path: str) -> str:
    """The version an ffmpeg binary reports, asked the way the hub asks."""
    ffmpeg_bin.configure(path)
    return ffmpeg_bin.ffmpeg_version()
