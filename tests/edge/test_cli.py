"""Command-line flags become a validated EdgeConfig; bad values give clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import ConfigError, FacesConfig, parse_args, parse_bitrate, parse_size
from edge.sources import DEVICE, FILE, TEST

HUB = ["--hub", "192.168.1.3"]
ROOT = Path(__file__).resolve().parents[2]


def test_defaults_stream_camera_zero_at_720p_15fps_2M() -> None:
    config = parse_args([*HUB, "--location", "driveway"])
    assert (config.hub_host, config.hub_port, config.location) == ("192.168.1.3", 1025, "driveway")
    [stream] = config.streams
    assert (stream.name, stream.source.kind, stream.source.value) == ("driveway-video0", DEVICE, "0")
    assert (stream.width, stream.height, stream.fps, stream.bitrate) == (1280, 720, 15.0, 2_000_000)
    assert stream.loop and config.token is None and config.log_level == "INFO"


def test_names_pair_with_cameras_in_order_and_the_rest_are_derived() -> None:
    config = parse_args([
        *HUB, "--location", "driveway", "--camera", "test", "--name", "gate",
        "--camera", "/videos/front door.mp4", "--camera", "2", "--no-loop",
        "--fps", "10", "--size", "640x360", "--bitrate", "800k", "--log-level", "debug",
    ])
    assert [(s.name, s.source.kind) for s in config.streams] == [
        ("gate", TEST), ("driveway-front-door", FILE), ("driveway-video2", DEVICE),
    ]
    assert all((s.width, s.height, s.fps, s.bitrate, s.loop) == (640, 360, 10.0, 800_000, False)
               for s in config.streams)
    assert config.log_level == "DEBUG"


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  abc.DEF-123\n")
    config = parse_args([*HUB, "--token-file", str(token_file)])
    assert config.token == "abc.DEF-123"
    assert "abc.DEF" not in repr(config)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("porch", True),
        ("Front_Door-2.cam", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("", False),
        ("-rf", False),
        (".hidden", False),
        ("a..b", False),
        ("a/b", False),
        ("a b", False),
        ("cam%d", False),
        ("kamera-ü", False),
    ],
)
def test_explicit_names_must_pass_the_allowlist(
    name: str, ok: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*HUB, "--camera", "test", "--name", name]
    if ok:
        assert parse_args(argv).streams[0].name == name
    else:
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2
        assert "--name" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--camera", "test", "--camera", "test"],  # two streams with one name: 409 at the hub
        ["--camera", "test", "--name", "a", "--name", "b"],
        ["--size", "1280x721"],
        ["--size", "big"],
        ["--bitrate", "fast"],
        ["--fps", "0"],
        ["--port", "70000"],
        ["--location", "Küche"],
        ["--token", "two words"],
        ["--token-file", "/nonexistent/token"],
        ["--token", "a", "--token-file", "/etc/hostname"],
    ],
)
def test_bad_flags_exit_with_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*HUB, "--location", "driveway", *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("text", "bits"), [("2M", 2_000_000), ("800k", 800_000), ("1.5m", 1_500_000), ("64000", 64_000)]
)
def test_bitrate_accepts_k_and_m_suffixes(text: str, bits: int) -> None:
    assert parse_bitrate(text) == bits


def test_size_must_be_even_for_yuv420p() -> None:
    assert parse_size("640x360") == (640, 360)
    with pytest.raises(ConfigError):
        parse_size("641x360")


def test_spool_is_on_by_default_under_the_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    config = parse_args([*HUB, "--location", "x"])
    assert config.spool_dir == tmp_path / "nvr-edge" / "spool"
    assert (config.spool_bytes, config.backfill_rate) == (4_000_000_000, 4_000_000)
    monkeypatch.delenv("XDG_STATE_HOME")
    assert parse_args([*HUB, "--location", "x"]).spool_dir == (
        Path.home() / ".local" / "state" / "nvr-edge" / "spool")


def test_spool_flags() -> None:
    config = parse_args([*HUB, "--location", "x", "--spool-dir", "/var/spool/nvr",
                         "--spool-size", "500M", "--backfill-rate", "20M"])
    assert (config.spool_dir, config.spool_bytes, config.backfill_rate) == (
        Path("/var/spool/nvr"), 500_000_000, 20_000_000)
    assert parse_args([*HUB, "--location", "x", "--no-spool"]).spool_dir is None


@pytest.mark.parametrize("argv", [["--spool-size", "lots"], ["--spool-size", "10k"],
                                  ["--backfill-rate", "1k"]])
def test_bad_spool_flags_exit_with_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*HUB, "--location", "x", *argv])
    assert exc.value.code == 2 and argv[0] in capsys.readouterr().err


def test_motion_is_on_by_default_and_the_flags_set_it(tmp_path: Path) -> None:
    [stream] = parse_args([*HUB, "--location", "x"]).streams
    assert (stream.motion, stream.motion_sensitivity) == (True, 50)
    [stream] = parse_args([*HUB, "--location", "x", "--no-motion",
                           "--motion-sensitivity", "80"]).streams
    assert (stream.motion, stream.motion_sensitivity) == (False, 80)
    path = write_config(tmp_path, "motion = false\nmotion_sensitivity = 10\n")
    [stream] = parse_args([*HUB, "--location", "x", "--config", path]).streams
    assert (stream.motion, stream.motion_sensitivity) == (False, 10)


@pytest.mark.parametrize("value", ["0", "101", "lots"])
def test_a_bad_motion_sensitivity_exits_with_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*HUB, "--location", "x", "--motion-sensitivity", value])
    assert exc.value.code == 2 and "--motion-sensitivity" in capsys.readouterr().err


# -- the TOML config file (edge/config_file.py): keys are the long flags ------------------------


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return str(path)


def test_config_file_keys_are_the_flags_and_the_command_line_wins(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    path = write_config(tmp_path, f"""
hub = "hub.lan"
port = 1026
location = "yard"
camera = ["test", "2"]
name = ["gate", "shed"]
fps = 10
size = "640x360"
loop = false
token_file = "{token_file}"
spool_size = "1G"
no_spool = false
""")
    config = parse_args(["--config", path, "--fps", "5"])
    assert (config.hub_host, config.hub_port, config.location) == ("hub.lan", 1026, "yard")
    assert [s.name for s in config.streams] == ["gate", "shed"]
    assert all((s.fps, s.width, s.loop) == (5.0, 640, False) for s in config.streams)
    assert config.token == "secret-token" and config.spool_bytes == 1_000_000_000
    assert config.spool_dir is not None
    # a list on the command line replaces the file's list
    [only] = parse_args([f"--config={path}", "--camera", "test", "--name", "one"]).streams
    assert only.name == "one"


@pytest.mark.parametrize(("text", "message"), [
    ('hub = "h"\nspool_sise = "1G"\n', "unknown key 'spool_sise' (did you mean 'spool_size'?)"),
    ('hub = "h"\nloop = "yes"\n', "loop: expected true or false"),
    ('hub = "h"\nfps = [1, 2]\n', "fps: expected a string or a number"),
    ('hub = "h"\nfps = 500\n', "--fps 500: must be above 0 and at most 120"),
    ('hub = \n', "not valid TOML"),
])
def test_config_file_errors_name_the_key(tmp_path: Path, capsys, text: str, message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--config", write_config(tmp_path, text)])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_config_file_is_a_clear_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "nope.toml")])
    assert "cannot read it: No such file or directory" in capsys.readouterr().err


def test_tls_flags_pin_and_ca(tmp_path: Path) -> None:
    from edge.tls import TlsSettings

    assert parse_args([*HUB, "--location", "x"]).tls is None
    assert parse_args([*HUB, "--location", "x", "--tls"]).tls == TlsSettings()
    pin = "sha256:" + ":".join(["AB"] * 32)  # openssl's -fingerprint form
    assert parse_args([*HUB, "--location", "x", "--pin", pin]).tls == TlsSettings(pin=b"\xab" * 32)
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert parse_args([*HUB, "--location", "x", "--ca", str(ca)]).tls == TlsSettings(ca_file=ca)


@pytest.mark.parametrize("flags, message", [
    (["--pin", "sha256:abc"], "expected sha256: and 64 hex digits"),
    (["--pin", "md5:" + "ab" * 32], "expected sha256:"),
    (["--ca", "/nonexistent.pem"], "--ca /nonexistent.pem: no such file"),
])
def test_bad_tls_flags_exit_with_usage_error(flags: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([*HUB, "--location", "x", *flags])
    assert message in capsys.readouterr().err


# -- python -m edge check-config FILE [FLAGS] --------------------------------------------------

def test_config_file_reports_every_bad_key_at_once(tmp_path: Path, capsys) -> None:
    path = write_config(tmp_path, 'hub = "h"\nspool_sise = "1G"\nloop = "yes"\nxyzzy = 1\n')
    with pytest.raises(SystemExit):
        parse_args(["--config", path])
    err = capsys.readouterr().err
    assert "unknown key 'spool_sise' (did you mean 'spool_size'?)" in err
    assert "loop: expected true or false, got 'yes'" in err
    assert "unknown key 'xyzzy' (allowed: backfill_rate, bitrate, ca, camera," in err


def test_check_config_prints_ok_or_the_problems_with_its_exit_code(tmp_path: Path, capsys) -> None:
    from edge.__main__ import main

    good = write_config(tmp_path, 'hub = "hub.lan"\nlocation = "yard"\nfps = 10\n')
    assert main(["check-config", good, "--no-spool"]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"
    bad = str(tmp_path / "bad.toml")
    Path(bad).write_text('port = 1026\nfps = "fast"\n')
    assert main(["check-config", bad]) == 1
    assert "argument --fps: invalid float value: 'fast'" in capsys.readouterr().err
    Path(bad).write_text('port = 1026\n')
    assert main(["check-config", bad]) == 1
    assert capsys.readouterr().err == "the following arguments are required: --hub\n"
    assert main(["check-config", str(tmp_path / "absent.toml")]) == 1
    assert "cannot read it" in capsys.readouterr().err
    assert main(["check-config"]) == 2


# -- --faces and its options (docs/design/faces.md section 1) ----------------------------------


def test_faces_are_off_by_default_and_the_flags_and_keys_set_them(tmp_path: Path) -> None:
    [stream] = parse_args([*HUB, "--location", "x"]).streams
    assert stream.faces is None
    [stream] = parse_args([*HUB, "--location", "x", "--faces"]).streams
    assert stream.faces == FacesConfig(rate=2.0, min_size=60, detect_width=0, debounce=30.0,
                                       overlay=False)
    path = write_config(tmp_path, "faces = true\nfaces_rate = 0.5\nfaces_min_size = 90\n"
                        "faces_detect_width = 640\nfaces_debounce = 10\nfaces_overlay = true\n")
    [stream] = parse_args([*HUB, "--location", "x", "--config", path]).streams
    assert stream.faces == FacesConfig(0.5, 90, 640, 10.0, True)
    [stream] = parse_args([*HUB, "--location", "x", "--config", path, "--no-faces"]).streams
    assert stream.faces is None


@pytest.mark.parametrize("flags, message", [
    (["--faces-rate", "0.1"], "--faces-rate 0.1: must be 0.2-5"),
    (["--faces-rate", "6"], "--faces-rate 6: must be 0.2-5"),
    (["--faces-rate", "nan"], "--faces-rate nan: must be 0.2-5"),
    (["--faces-min-size", "39"], "--faces-min-size 39: must be 40-1000"),
    (["--faces-min-size", "1001"], "--faces-min-size 1001: must be 40-1000"),
    (["--faces-detect-width", "319"], "--faces-detect-width 319: must be 0 (the full width) or "
                                      "320-1280"),
    (["--faces-detect-width", "700", "--size", "640x360"], "or 320-640 (the frame's width)"),
    (["--faces-debounce", "4"], "--faces-debounce 4: must be 5-600"),
    (["--faces-debounce", "601"], "--faces-debounce 601: must be 5-600"),
])
def test_faces_options_out_of_their_limits_exit_with_usage_error(
        flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args([*HUB, "--location", "x", "--faces", *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("fake, words", [
    ({"dlib.py": "raise ImportError('libdlib.so: cannot open shared object file')"},
     "the face engine cannot load (libdlib.so: cannot open shared object file): install "
     "requirements-edge-faces.txt (scripts/install-edge --faces)"),
    ({"face_recognition_models/__init__.py":
      "def face_recognition_model_location():\n    return '/nonexistent/models/x.dat'\n"},
     "face model /nonexistent/models/shape_predictor_5_face_landmarks.dat is missing: install "
     "requirements-edge-faces.txt (scripts/install-edge --faces)"),
])
def test_faces_without_dlib_or_its_models_exit_2_with_one_line(
        tmp_path: Path, fake: dict[str, str], words: str) -> None:
    for name, text in fake.items():  # a package that shadows the installed one
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "edge", *HUB, "--camera", "test", "--no-spool", "--faces"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"python -m edge: --faces: {words}\n"


def test_camera_credentials_are_flagged_only_when_on_the_command_line(tmp_path: Path) -> None:
    from edge.__main__ import exposed_credentials

    url = "rtsp://admin:hunter2@192.0.2.7/stream"
    assert exposed_credentials(["--hub", "h", "--camera", url]) == ["rtsp://***@192.0.2.7/stream"]
    assert exposed_credentials([f"--camera={url}", "--camera", "test"]) == [
        "rtsp://***@192.0.2.7/stream"]
    assert exposed_credentials(["--camera", "rtsp://192.0.2.7/stream?token=abc"]) == [
        "rtsp://192.0.2.7/stream?token=***"]
    config = tmp_path / "edge.toml"
    config.write_text(f'hub = "h"\ncamera = ["{url}"]\n', "utf-8")
    assert exposed_credentials(["--config", str(config)]) == []  # the file keeps it out of ps
    assert exposed_credentials(["--camera", "rtsp://192.0.2.7/stream", "--camera", "0"]) == []
