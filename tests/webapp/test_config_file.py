"""The web app's reading of the shared config file: every key checked, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.errors import ConfigError
from webapp import cli
from webapp.config import check_file, flask_overrides, settings_from

SECRET = "hunter2-secret-value"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nvr.toml"
    path.write_text(text)
    return path


def test_every_problem_of_the_file_is_one_line_of_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'segment_seconds = "ten"\n[webapp]\nport = "8080"\nhots = "x"\n'
                           'public_metrics = "false"\nhsts_max_age = -1\n')
    with pytest.raises(ConfigError) as caught:
        settings_from(path, {}, {})
    assert str(caught.value).splitlines() == [
        "segment_seconds: expected a number from 1 to 3600, got 'ten'",
        "webapp.port: expected a whole number from 0 to 65535, got '8080'",
        "webapp: unknown key 'hots' (did you mean 'host'?)",
        "webapp.public_metrics: expected true or false, got 'false'",
        "webapp.hsts_max_age: must be between 0 and 315360000, got -1",
    ]


def test_nvr_db_url_beats_the_file_and_the_db_flag_beats_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'db = "sqlite:///file.db"\n')
    environ = {"NVR_DB_URL": "postgresql+psycopg://nvr:pw@db/nvr"}
    assert settings_from(path, {}, environ)["db"] == environ["NVR_DB_URL"]
    assert settings_from(path, {"db": "sqlite:///flag.db"}, environ)["db"] == "sqlite:///flag.db"
    assert settings_from(path, {}, {})["db"] == "sqlite:///file.db"


def test_nvr_secret_key_becomes_the_flask_secret_key_and_a_short_one_is_refused() -> None:
    settings = settings_from(None, {}, {"NVR_SECRET_KEY": SECRET})
    assert flask_overrides(settings)["SECRET_KEY"] == SECRET
    assert "SECRET_KEY" not in flask_overrides(settings_from(None, {}, {}))
    with pytest.raises(ConfigError) as caught:
        settings_from(None, {}, {"NVR_SECRET_KEY": "short"})
    assert str(caught.value).startswith("NVR_SECRET_KEY: must hold at least 16 characters")
    assert str(caught.value).endswith("got (hidden: it is a secret)")


def test_bad_secrets_from_the_environment_are_never_shown(tmp_path: Path) -> None:
    lines = check_file(write(tmp_path, ""), {"NVR_DB_URL": f"mysql://u:{SECRET}@h/db",
                                            "NVR_SECRET_KEY": SECRET[:10]})
    assert [line.split(":")[0] for line in lines] == ["NVR_DB_URL", "NVR_SECRET_KEY"]
    assert not any(SECRET[:10] in line for line in lines)


def test_check_config_prints_ok_or_the_problems_with_its_exit_code(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("NVR_DB_URL", "NVR_SECRET_KEY"):
        monkeypatch.delenv(variable, raising=False)
    good = tmp_path / "good.toml"
    good.write_text('[webapp]\nport = 8081\n')
    assert cli.main(["check-config", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"
    bad = write(tmp_path, '[webapp]\nport = 99999\ntrusted_proxies = ["not-an-address"]\n')
    assert cli.main(["check-config", str(bad)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "webapp.port: must be between 0 and 65535, got 99999",
        "trusted_proxies: 'not-an-address' is not an IP address or network "
        "(e.g. \"127.0.0.1\" or \"10.0.0.0/24\")"]
    assert cli.main(["check-config", str(tmp_path / "absent.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err
