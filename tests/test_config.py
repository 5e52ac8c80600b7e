"""Settings: defaults, overrides, .env precedence, one clear error per bad variable."""

from __future__ import annotations

import pytest

from tests.conftest import ACCOUNT_SID, make_settings
from worker.config import load_settings
from worker.errors import ConfigError


def test_defaults_follow_design(tmp_path):
    settings = make_settings(tmp_path, TWILIO_API_BASE_URL="", PUBLIC_BASE_URL="")
    assert settings.twilio_api_base_url == "https://api.twilio.com"
    assert settings.public_base_url == "http://127.0.0.1:8080"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.recording_format == "mp3"
    assert (settings.http_port, settings.web_port, settings.flower_port) == (8080, 8000, 5555)
    assert settings.playback_url_ttl == 3600
    assert settings.reconcile_lookback_hours == 48
    assert settings.cache_max_bytes == 0
    assert settings.delete_from_twilio_after_days is None
    assert settings.demo is False


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("HTTP_PORT=9000\nRECORDING_FORMAT=wav\n")
    settings = make_settings(tmp_path, ENV_FILE=str(env_file), HTTP_PORT="9100")
    assert settings.http_port == 9100
    assert settings.recording_format == "wav"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_PORT", "eighty"),
        ("HTTP_PORT", "70000"),
        ("WEB_PORT", "-1"),
        ("RECORDING_FORMAT", "ogg"),
        ("TWILIO_API_BASE_URL", "ftp://api.twilio.com"),
        ("TWILIO_API_BASE_URL", "https://api.twilio.com/2010-04-01"),
        ("PUBLIC_BASE_URL", "not a url"),
        ("REDIS_URL", "http://localhost"),
        ("PLAYBACK_URL_TTL", "0"),
        ("LOG_FORMAT", "xml"),
        ("CACHE_MAX_BYTES", "-5"),
        ("TWILIO_ACCOUNT_SID", "AC123"),
        ("PLAYBACK_SIGNING_KEY", "short"),
        ("PLAYBACK_SIGNING_KEY", "has a $variable in it"),
        ("FLOWER_BASIC_AUTH", "no-colon"),
    ],
)
def test_malformed_setting_is_named(tmp_path, name, value):
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, **{name: value})
    assert name in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("missing", ["API_TOKEN", "PLAYBACK_SIGNING_KEY", "FLOWER_BASIC_AUTH"])
def test_secrets_are_required_outside_demo_mode(tmp_path, missing):
    with pytest.raises(ConfigError, match=missing):
        make_settings(tmp_path, **{missing: ""})


def test_half_of_the_twilio_credentials_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        make_settings(tmp_path, TWILIO_AUTH_TOKEN="")


def test_demo_mode_generates_secrets_once_and_keeps_them(tmp_path):
    env = {"ENV_FILE": str(tmp_path / "none"), "RECORDINGS_DIR": str(tmp_path / "rec"), "SIMULATOR_PORT": "9999"}
    first = load_settings(env)
    second = load_settings(env)
    assert first.demo and second.demo
    assert first.twilio_account_sid.startswith("AC") and first.twilio_account_sid != ACCOUNT_SID
    assert first.twilio_api_base_url == "http://127.0.0.1:9999"
    assert (first.api_token, first.playback_signing_key, first.flower_basic_auth) == (
        second.api_token,
        second.playback_signing_key,
        second.flower_basic_auth,
    )
    assert (tmp_path / "rec" / ".state" / "demo-secrets.json").is_file()


def test_demo_mode_keeps_secrets_given_in_the_environment(tmp_path):
    env = {"ENV_FILE": str(tmp_path / "none"), "RECORDINGS_DIR": str(tmp_path / "rec"), "API_TOKEN": "mine"}
    assert load_settings(env).api_token == "mine"


def test_secrets_are_not_in_repr(tmp_path):
    settings = make_settings(tmp_path)
    assert settings.twilio_auth_token not in repr(settings)
    assert settings.playback_signing_key not in repr(settings)
