"""The ``[payments]`` section: off unless present, keys only ever read from the environment."""

from pathlib import Path

import pytest

from calsync.config import ConfigError, PaymentProvider, load_settings


def test_without_the_section_payments_are_off(tmp_path: Path) -> None:
    path = tmp_path / "calsync.toml"
    path.write_text('database_url = "sqlite:///x.db"\n')
    assert load_settings(path).payments is None


def test_the_section_names_variables_and_keys_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "calsync.toml"
    path.write_text(
        '[payments]\nprovider = "stripe"\nsecret_key_env = "MY_STRIPE_KEY"\n'
        'webhook_secret_env = "MY_HOOK"\napi_base = "http://127.0.0.1:8420"\n'
    )
    monkeypatch.setenv("MY_STRIPE_KEY", "sk_test_abc")
    monkeypatch.setenv("MY_HOOK", "whsec_xyz")
    payments = load_settings(path).payments
    assert payments is not None
    assert payments.provider is PaymentProvider.STRIPE
    assert payments.hold_minutes == 15
    assert payments.secret_key() == "sk_test_abc"
    assert payments.webhook_secret() == "whsec_xyz"
    # The settings hold names, never the keys: printing them shows no key.
    assert "sk_test_abc" not in repr(load_settings(path))


def test_an_unset_key_variable_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "calsync.toml"
    path.write_text('[payments]\nsecret_key_env = "NOT_SET_STRIPE"\n')
    monkeypatch.delenv("NOT_SET_STRIPE", raising=False)
    payments = load_settings(path).payments
    assert payments is not None
    with pytest.raises(ConfigError, match="NOT_SET_STRIPE"):
        payments.secret_key()


def test_a_key_pasted_where_a_variable_name_belongs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calsync.toml"
    path.write_text('[payments]\nsecret_key_env = "sk_test_51H..x"\n')
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        load_settings(path)


def test_payments_keys_are_known_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from calsync.config import unknown_env_variables

    assert unknown_env_variables({"CALSYNC_PAYMENTS__HOLD_MINUTES": "5"}) == []
