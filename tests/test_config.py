"""Settings and the operator CLI: defaults, overrides, .env precedence, one clear error per bad value."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support import ACCOUNT_SID, make_settings
from worker import cli as worker_cli
from worker import twilio_api
from worker.config import load_settings, merged_environment
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


def test_nginx_listens_everywhere_but_the_demo_on_loopback(tmp_path):
    assert make_settings(tmp_path).http_listen == "0.0.0.0:8080"
    demo = make_settings(tmp_path, TWILIO_ACCOUNT_SID="", TWILIO_AUTH_TOKEN="", API_TOKEN="", PLAYBACK_SIGNING_KEY="")
    assert demo.demo and demo.http_listen == "127.0.0.1:8080"
    assert make_settings(tmp_path, HTTP_HOST="::1", HTTP_PORT="9000").http_listen == "[::1]:9000"


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
        ("HTTP_HOST", "example.com"),
        ("HTTP_HOST", "0.0.0.0:8080"),
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
        ("REDIS_URL", "redis://localhost:abc/0"),
        ("REDIS_URL", "redis://localhost:99999/0"),
        ("REDIS_URL", "unix:///tmp/redis.sock"),  # redis-py takes it, Celery's transport does not
        ("PUBLIC_BASE_URL", "http://cache.test:-1/"),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:abc"),
        ("HTTP_PORT", "\u0663\u0660"),  # Arabic-Indic digits: int() reads 30
        ("PLAYBACK_URL_TTL", "9" * 20),
        ("TASK_TIME_LIMIT", "9" * 20),
        ("DOWNLOAD_CONNECT_TIMEOUT", "inf"),
        ("LOCK_TTL_SECONDS", "1e400"),
        ("RETRY_BACKOFF_SECONDS", "nan"),
        ("RECORDINGS_DIR", '/tmp/say "cheese"'),  # written into nginx.conf
        ("RECORDINGS_DIR", "/tmp/$host"),
        ("RECORDINGS_DIR", "/tmp/rec\udcff"),  # a non-UTF-8 byte, as os.environ hands it over
        ("PLAYBACK_LOG", "/tmp/back\\slash.log"),
    ],
)
def test_malformed_setting_is_named(tmp_path, name, value):
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, **{name: value})
    assert name in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "limits", [{"BROKER_VISIBILITY_TIMEOUT": "600"}, {"TASK_TIME_LIMIT": "7200"}, {"TASK_TIME_LIMIT": "7201"}]
)
def test_a_task_time_limit_not_below_the_visibility_timeout_is_refused(tmp_path, limits):
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, **limits)
    message = str(error.value)
    assert "TASK_TIME_LIMIT" in message and "BROKER_VISIBILITY_TIMEOUT" in message and "redeliver" in message


def test_a_task_time_limit_below_the_visibility_timeout_is_taken(tmp_path):
    settings = make_settings(tmp_path, TASK_TIME_LIMIT="60", BROKER_VISIBILITY_TIMEOUT="61")
    assert (settings.task_time_limit, settings.broker_visibility_timeout) == (60, 61)


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


def test_paths_with_spaces_are_fine(tmp_path):
    settings = make_settings(tmp_path, RECORDINGS_DIR=str(tmp_path / "my recordings"))
    assert settings.recordings_dir.name == "my recordings"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"API_TOKEN=\xff\xfeabc\n", "UTF-8"),
        (b'HTTP_PORT="70000\n', "line 1"),
        (b"HTTP_PORT=9000\nno equals sign here\n", "line 2"),
    ],
)
def test_malformed_env_file_is_named(tmp_path, content, problem):
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, ENV_FILE=str(env_file))
    assert str(env_file) in str(error.value) and problem in str(error.value)
    assert "\n" not in str(error.value)


def test_env_file_that_is_a_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, ENV_FILE=str(tmp_path))
    assert "ENV_FILE" in str(error.value)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--since", "2026-01-01", "--page-size", "0"], "--page-size"),
        (["--since", "2026-01-01", "--page-size", "1001"], "--page-size"),
        (["--since", "2026-01-01", "--page-size", "-1"], "--page-size"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "--until must be after --since"),
        (["--since", "2026-01-01", "--until", "2026-01-01"], "--until must be after --since"),
    ],
)
def test_backfill_arguments_are_checked_before_anything_runs(capsys, args, problem):
    with pytest.raises(SystemExit) as done:
        worker_cli.main(["backfill", *args])
    assert done.value.code == 2
    assert problem in capsys.readouterr().err


def test_check_config_names_a_recordings_dir_that_cannot_be_created(tmp_path):
    settings = make_settings(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = dataclasses.replace(settings, recordings_dir=blocker / "recordings")
    with pytest.raises(ConfigError, match="RECORDINGS_DIR cannot be created: .*a-file is not a folder"):
        worker_cli._check_config(settings, None)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DOWNLOAD_READ_TIMEOUT", ".5", 0.5),
        ("DOWNLOAD_READ_TIMEOUT", "10.", 10.0),
        ("RETRY_BACKOFF_SECONDS", "1e-3", 0.001),
        ("LOCK_TTL_SECONDS", "+2", 2.0),
        ("PLAYBACK_URL_TTL", "+60", 60),
        ("PLAYBACK_URL_TTL", "1_000", 1000),
        ("CACHE_MAX_BYTES", str(2**50), 2**50),  # 1 PiB: 16 digits
    ],
)
def test_numbers_python_reads_are_still_accepted(tmp_path, name, value, expected):
    settings = make_settings(tmp_path, **{name: value})
    assert getattr(settings, name.lower()) == expected


def test_a_dotenv_folder_such_as_a_virtualenv_is_not_an_env_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").mkdir()
    assert merged_environment({"HTTP_PORT": "9000"}) == {"HTTP_PORT": "9000"}


def _regional(tmp_path, **overrides: str):
    return make_settings(tmp_path, **{"TWILIO_API_BASE_URL": "", **overrides})


def test_a_region_and_an_edge_pick_twilios_regional_origin_for_everything(tmp_path):
    settings = _regional(tmp_path, TWILIO_REGION="ie1", TWILIO_EDGE="dublin")
    origin = "https://api.dublin.ie1.twilio.com"
    assert settings.twilio_api_base_url == origin
    assert twilio_api.media_url(settings, "RE" + "a" * 32, "mp3").startswith(f"{origin}/2010-04-01/Accounts/")
    assert twilio_api.make_client(settings).api.base_url == origin  # the REST lists and lookups too
    assert twilio_api.is_twilio_url(settings, f"{origin}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE1")
    for forged in (
        "https://api.twilio.com/2010-04-01/Accounts/x",  # the US origin is another origin now
        "https://api.dublin.ie1.twilio.com.evil.test/2010-04-01/Accounts/x",
        "https://api.dublin.ie1.twilio.com@evil.test/2010-04-01/Accounts/x",
        "https://api.sydney.au1.twilio.com/2010-04-01/Accounts/x",
    ):
        assert not twilio_api.is_twilio_url(settings, forged), forged


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"TWILIO_REGION": "ie1"}, "TWILIO_EDGE is required with TWILIO_REGION"),
        ({"TWILIO_EDGE": "dublin"}, "TWILIO_REGION is required with TWILIO_EDGE"),
        ({"TWILIO_REGION": "ie1.evil.test", "TWILIO_EDGE": "dublin"}, "TWILIO_REGION is malformed"),
        ({"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin/x"}, "TWILIO_EDGE is malformed"),
        (
            {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin", "TWILIO_API_BASE_URL": "http://twilio.test"},
            "not both",
        ),
        (
            {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin", "TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""},
            "need Twilio credentials",
        ),
    ],
)
def test_a_region_setting_that_cannot_work_is_one_clear_error(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _regional(tmp_path, **overrides)
