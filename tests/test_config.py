"""Configuration: the file, environment overrides, and clear messages for broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from calsync.config import ConfigError, LogLevel, load_settings
from calsync.secretbox import SecretBox, SecretKeyMismatch


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calsync.toml"
    path.write_text(text)
    return path


def test_file_values_and_environment_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        'database_url = "sqlite:///x.db"\nlog_level = "DEBUG"\n'
        "[sync]\nhorizon_days = 30\npoll_interval_seconds = 120\n",
    )
    monkeypatch.setenv("CALSYNC_SYNC__HORIZON_DAYS", "45")
    monkeypatch.setenv("CALSYNC_BASE_URL", "https://book.example.org/")
    settings = load_settings(path)
    assert settings.sync.horizon_days == 45
    assert settings.sync.poll_interval_seconds == 120
    assert settings.base_url == "https://book.example.org"
    assert settings.log_level is LogLevel.DEBUG


def test_plain_postgresql_url_uses_psycopg3(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, 'database_url = "postgresql://u@db/calsync"\n'))
    assert settings.database_url == "postgresql+psycopg://u@db/calsync"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("database_url = 'sqlite:///x.db\n", "is not valid TOML"),
        ("[sync]\nhorizon_days = 'soon'\n", "sync.horizon_days"),
        ("[sync]\nhorizon_days = 0\n", "sync.horizon_days"),
        ("databse_url = 'sqlite:///x.db'\n", "databse_url: unknown key"),
        ("base_url = 'book.example.org'\n", "base_url: Value error, must start with http"),
        ("database_url = 'mysql://x'\n", "database_url"),
        ("secret_key = 'short'\n", "secret_key"),
        ("[web]\nframe_ancestors = ['coach.example/page']\n", "web.frame_ancestors"),
    ],
)
def test_broken_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert expected in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_missing_secret_key_explains_how_to_set_it(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="CALSYNC_SECRET_KEY"):
        settings.require_secret_key()


def test_example_config_is_valid_and_complete() -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    settings = load_settings(example)
    text = example.read_text()
    for key in settings.model_dump():
        assert key in text, f"{key} is not documented in config.example.toml"
    for key in settings.sync.model_dump():
        assert key in text, f"sync.{key} is not documented in config.example.toml"


def test_secrets_round_trip_and_refuse_another_key() -> None:
    box = SecretBox("k" * 40)
    token = box.encrypt("pässword")
    assert "pässword" not in token
    assert box.decrypt(token) == "pässword"
    with pytest.raises(SecretKeyMismatch, match="secret_key changed"):
        SecretBox("j" * 40).decrypt(token)
