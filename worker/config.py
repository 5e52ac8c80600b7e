"""Settings: one frozen object built from the environment (and `.env`).

Every process (web, worker, beat, flower, the runner, the simulator's demo
mode) builds the same object from the same variables, so they agree on ports,
paths and secrets. Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import io
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from redis.connection import parse_url

from . import demo
from .bucket_settings import BucketSettings, bucket_settings
from .errors import ConfigError
from .sids import FORMATS, is_sid

T = TypeVar("T")

DEFAULT_API_BASE_URL = "https://api.twilio.com"
# RECORDING_CHANNELS: what the media GET asks Twilio for (its RequestedChannels).
REQUESTED_CHANNELS = {"as-recorded": None, "mono": 1, "dual": 2}


@dataclass(frozen=True)
class Settings:
    """Typed configuration of every process; see README for each variable."""

    twilio_account_sid: str
    twilio_auth_token: str = field(repr=False)
    twilio_api_base_url: str
    public_base_url: str
    redis_url: str
    recordings_dir: Path
    recording_format: str
    recording_channels: str  # as-recorded, mono (RequestedChannels=1) or dual (RequestedChannels=2)
    twilio_max_concurrent_requests: int  # across every worker and host (worker.twilio_slots)
    twilio_encryption_keys_dir: Path | None  # <public_key_sid>.pem private keys (worker.encryption)
    http_port: int
    http_host: str
    web_port: int
    flower_port: int
    api_token: str = field(repr=False)
    playback_signing_key: str = field(repr=False)
    playback_url_ttl: int
    flower_basic_auth: str = field(repr=False)
    log_format: str
    reconcile_lookback_hours: int
    cache_max_bytes: int
    delete_from_twilio_after_days: int | None
    demo: bool
    simulator_port: int
    runtime_dir: Path
    playback_log: Path
    flower_url_prefix: str
    bucket: BucketSettings | None  # STORAGE_URL: recordings in a bucket, not on the volume
    edge_cache_dir: Path
    edge_cache_max_bytes: int
    # Tuning knobs with production defaults; tests shorten them.
    download_connect_timeout: float = 5.0
    download_read_timeout: float = 30.0
    download_max_retries: int = 8
    retry_backoff_seconds: float = 2.0
    retry_backoff_max_seconds: float = 300.0
    lock_ttl_seconds: float = 10.0
    broker_visibility_timeout: int = 7200
    task_time_limit: int = 3600
    extra: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def state_dir(self) -> Path:
        """Folder on the volume for small durable state (legs, demo secrets)."""
        return self.recordings_dir / ".state"

    @property
    def http_listen(self) -> str:
        """HTTP_HOST:HTTP_PORT as nginx's ``listen`` takes it (IPv6 in brackets)."""
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"{host}:{self.http_port}"

    @property
    def flower_credentials(self) -> tuple[str, str]:
        """FLOWER_BASIC_AUTH split into user and password."""
        user, _, password = self.flower_basic_auth.partition(":")
        return user, password


def _read(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _typed(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = _read(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} is malformed: {exc}") from None


def _int(raw: str) -> int:
    # ASCII only: int() also reads other scripts' digits. At most 10**18, which
    # fits the 64-bit integers of nginx, Redis and time_t.
    number = int(raw) if raw.isascii() else None
    if number is None or abs(number) > 10**18:
        raise ValueError(f"expected a whole number, got {raw!r}")
    return number


def _port(raw: str) -> int:
    port = _int(raw)
    if not 1 <= port <= 65535:
        raise ValueError(f"expected a port 1-65535, got {raw!r}")
    return port


def _non_negative(raw: str) -> int:
    number = _int(raw)
    if number < 0:
        raise ValueError(f"expected a whole number >= 0, got {raw!r}")
    return number


def _positive(raw: str) -> int:
    number = _int(raw)
    if number <= 0:
        raise ValueError(f"expected a whole number > 0, got {raw!r}")
    return number


def _positive_float(raw: str) -> float:
    # float() also takes inf, nan, 1e400 and other scripts' digits, which
    # timeouts and TTLs cannot use; 10**9 seconds is over 30 years.
    number = float(raw) if raw.isascii() else math.nan
    if not (math.isfinite(number) and 0 < number <= 10**9):
        raise ValueError(f"expected a number of seconds > 0 such as 2 or 0.5, got {raw!r}")
    return number


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL, got {raw!r}")
    parts.port  # noqa: B018 -- raises ValueError for a port that is not 0-65535
    return raw.rstrip("/")


def _api_origin(raw: str) -> str:
    url = _http_url(raw)
    if urlsplit(url).path not in ("", "/"):
        raise ValueError(f"expected an origin without a path, got {raw!r}")
    return url


def _redis_url(raw: str) -> str:
    # redis:// and rediss:// only: Celery's transport cannot use redis-py's unix://.
    if urlsplit(raw).scheme not in ("redis", "rediss"):
        raise ValueError(f"expected redis://host:port/db, got {raw!r}")
    parse_url(raw)  # redis-py's own parser: ValueError for a bad port or database
    return raw


_REGION_PART = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")


def _regional_origin(env: Mapping[str, str], is_demo: bool) -> str | None:
    """``https://api.{edge}.{region}.twilio.com`` from TWILIO_REGION and TWILIO_EDGE (both or neither)."""
    region, edge = _read(env, "TWILIO_REGION"), _read(env, "TWILIO_EDGE")
    if not region and not edge:
        return None
    if not (region and edge):
        given, missing = ("TWILIO_REGION", "TWILIO_EDGE") if region else ("TWILIO_EDGE", "TWILIO_REGION")
        raise ConfigError(f"{missing} is required with {given}: Twilio's regional host names both")
    for name, value in (("TWILIO_REGION", region), ("TWILIO_EDGE", edge)):
        if not _REGION_PART.fullmatch(value):
            raise ConfigError(f"{name} is malformed: expected a name such as ie1 or dublin, got {value!r}")
    if is_demo:
        raise ConfigError("TWILIO_REGION and TWILIO_EDGE need Twilio credentials: demo mode talks to the simulator")
    if _read(env, "TWILIO_API_BASE_URL"):
        raise ConfigError("set TWILIO_API_BASE_URL or TWILIO_REGION and TWILIO_EDGE, not both: each picks the origin")
    return f"https://api.{edge}.{region}.twilio.com"


def _keys_dir(env: Mapping[str, str]) -> Path | None:
    """TWILIO_ENCRYPTION_KEYS_DIR: a folder that exists, or unset."""
    raw = _read(env, "TWILIO_ENCRYPTION_KEYS_DIR")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ConfigError(f"TWILIO_ENCRYPTION_KEYS_DIR is not a folder: {raw!r}")
    return path


def _path_setting(env: Mapping[str, str], name: str, default: str) -> Path:
    raw = _read(env, name) or default
    try:
        return nginx_path(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} is malformed: {exc}") from None


def nginx_path(raw: str) -> Path:
    """An absolute path nginx.conf can hold in double quotes."""
    path = Path(raw).resolve()
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"expected a UTF-8 path, got {raw!r}") from None
    if re.search(r'["\\$\x00-\x1f\x7f]', text):
        raise ValueError(f'nginx.conf cannot hold a path with ", \\, $ or control characters: {raw!r}')
    return path


def _ip_address(raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ValueError(f"expected an IP address such as 0.0.0.0 or 127.0.0.1, got {raw!r}") from None


def _url_prefix(raw: str) -> str:
    prefix = raw.strip("/")
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", prefix):
        raise ValueError(f"expected a path such as flower, got {raw!r}")
    return prefix


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {raw!r}")
        return raw

    return parse


def _basic_auth(raw: str) -> str:
    if not re.fullmatch(r"[^:\s]+:\S+", raw):
        raise ValueError("expected user:password")
    return raw


def merged_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the values of `.env` (the environment wins).

    ``ENV_FILE`` names another file; one that does not exist is skipped (tests
    and the bench point it nowhere on purpose).
    """
    env = dict(os.environ if environ is None else environ)
    named = env.get("ENV_FILE")
    env_file = Path(named or ".env")
    if not env_file.is_file():
        if named and env_file.exists():
            raise ConfigError(f"ENV_FILE is not a file: {env_file}")
        return env  # no .env (or a folder of that name, such as a virtualenv)
    return {**_env_file_values(env_file), **env}


def _env_file_values(env_file: Path) -> dict[str, str]:
    """``KEY=value`` lines of an env file, parsed by python-dotenv; ConfigError naming a bad line."""
    try:
        text = env_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{env_file} is not UTF-8 text (byte {exc.start})") from None
    # python-dotenv skips a line it cannot parse with only a warning; a typo
    # would silently fall back to a default, so refuse the file instead.
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise ConfigError(f"{env_file} line {line} is not KEY=value: {binding.original.string.strip()[:60]!r}")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise ConfigError naming a bad variable."""
    env = merged_environment(environ)
    account_sid = _read(env, "TWILIO_ACCOUNT_SID")
    auth_token = _read(env, "TWILIO_AUTH_TOKEN")
    if bool(account_sid) != bool(auth_token):
        missing = "TWILIO_AUTH_TOKEN" if account_sid else "TWILIO_ACCOUNT_SID"
        raise ConfigError(f"{missing} is required when the other Twilio credential is set")
    if account_sid and not is_sid(account_sid, "AC"):
        raise ConfigError("TWILIO_ACCOUNT_SID is malformed: expected AC followed by 32 hex digits")

    http_port = _typed(env, "HTTP_PORT", 8080, _port)
    recordings_dir = _path_setting(env, "RECORDINGS_DIR", "./data/recordings")
    simulator_port = _typed(env, "SIMULATOR_PORT", 8089, _port)
    runtime_dir = _path_setting(env, "RUNTIME_DIR", "./run")
    is_demo = account_sid is None
    secrets = _secrets(env, recordings_dir, is_demo)
    regional = _regional_origin(env, is_demo)
    if is_demo:
        account_sid, auth_token = secrets["TWILIO_ACCOUNT_SID"], secrets["TWILIO_AUTH_TOKEN"]
        default_api = f"http://127.0.0.1:{simulator_port}"
    else:
        default_api = regional or DEFAULT_API_BASE_URL

    settings = Settings(
        twilio_account_sid=account_sid,
        twilio_auth_token=auth_token,
        twilio_api_base_url=_typed(env, "TWILIO_API_BASE_URL", default_api, _api_origin),
        public_base_url=_typed(env, "PUBLIC_BASE_URL", f"http://127.0.0.1:{http_port}", _http_url),
        redis_url=_typed(env, "REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url),
        recordings_dir=recordings_dir,
        recording_format=_typed(env, "RECORDING_FORMAT", "mp3", _choice(*FORMATS)),
        recording_channels=_typed(env, "RECORDING_CHANNELS", "as-recorded", _choice(*REQUESTED_CHANNELS)),
        twilio_max_concurrent_requests=_typed(env, "TWILIO_MAX_CONCURRENT_REQUESTS", 20, _positive),
        twilio_encryption_keys_dir=_keys_dir(env),
        http_port=http_port,
        # The demo's generated secrets are printed: it listens on loopback unless told otherwise.
        http_host=_typed(env, "HTTP_HOST", "127.0.0.1" if is_demo else "0.0.0.0", _ip_address),
        web_port=_typed(env, "WEB_PORT", 8000, _port),
        flower_port=_typed(env, "FLOWER_PORT", 5555, _port),
        api_token=secrets["API_TOKEN"],
        playback_signing_key=_signing_key_checked(secrets["PLAYBACK_SIGNING_KEY"]),
        playback_url_ttl=_typed(env, "PLAYBACK_URL_TTL", 3600, _positive),
        flower_basic_auth=_basic_auth_checked(secrets["FLOWER_BASIC_AUTH"]),
        log_format=_typed(env, "LOG_FORMAT", "keyvalue", _choice("keyvalue", "json")),
        reconcile_lookback_hours=_typed(env, "RECONCILE_LOOKBACK", 48, _positive),
        cache_max_bytes=_typed(env, "CACHE_MAX_BYTES", 0, _non_negative),
        delete_from_twilio_after_days=_typed(env, "DELETE_FROM_TWILIO_AFTER_DAYS", None, _non_negative),
        demo=is_demo,
        simulator_port=simulator_port,
        flower_url_prefix=_typed(env, "FLOWER_URL_PREFIX", "", _url_prefix),
        runtime_dir=runtime_dir,
        bucket=bucket_settings(env, runtime_dir),
        edge_cache_dir=_path_setting(env, "EDGE_CACHE_DIR", str(runtime_dir / "edge-cache")),
        edge_cache_max_bytes=_typed(env, "EDGE_CACHE_MAX_BYTES", 10 * 1024**3, _positive),
        playback_log=_path_setting(env, "PLAYBACK_LOG", str(runtime_dir / "playback.log")),
        download_connect_timeout=_typed(env, "DOWNLOAD_CONNECT_TIMEOUT", 5.0, _positive_float),
        download_read_timeout=_typed(env, "DOWNLOAD_READ_TIMEOUT", 30.0, _positive_float),
        download_max_retries=_typed(env, "DOWNLOAD_MAX_RETRIES", 8, _non_negative),
        retry_backoff_seconds=_typed(env, "RETRY_BACKOFF_SECONDS", 2.0, _positive_float),
        retry_backoff_max_seconds=_typed(env, "RETRY_BACKOFF_MAX_SECONDS", 300.0, _positive_float),
        lock_ttl_seconds=_typed(env, "LOCK_TTL_SECONDS", 10.0, _positive_float),
        broker_visibility_timeout=_typed(env, "BROKER_VISIBILITY_TIMEOUT", 7200, _positive),
        task_time_limit=_typed(env, "TASK_TIME_LIMIT", 3600, _positive),
        extra={k: v for k, v in env.items() if k == "PROMETHEUS_MULTIPROC_DIR"},
    )
    _check_time_limits(settings)
    return settings


def _check_time_limits(settings: Settings) -> None:
    """Redis hands an unacknowledged task to another worker after the visibility
    timeout: a task allowed to run longer would be redelivered while still running."""
    if settings.task_time_limit >= settings.broker_visibility_timeout:
        raise ConfigError(
            f"TASK_TIME_LIMIT ({settings.task_time_limit} s) must be below BROKER_VISIBILITY_TIMEOUT "
            f"({settings.broker_visibility_timeout} s): Redis would redeliver a task that is still running"
        )


def _signing_key_checked(value: str) -> str:
    # The key is written into nginx's config, so it must not contain quotes,
    # spaces or ``$`` (nginx variables).
    if not re.fullmatch(r"[A-Za-z0-9_\-.~+/=]{16,}", value):
        raise ConfigError("PLAYBACK_SIGNING_KEY is malformed: expected at least 16 characters of A-Z a-z 0-9 _-.~+/=")
    return value


def _basic_auth_checked(value: str) -> str:
    try:
        return _basic_auth(value)
    except ValueError as exc:
        raise ConfigError(f"FLOWER_BASIC_AUTH is malformed: {exc}") from None


_SECRET_NAMES = ("API_TOKEN", "PLAYBACK_SIGNING_KEY", "FLOWER_BASIC_AUTH")


def _secrets(env: Mapping[str, str], recordings_dir: Path, is_demo: bool) -> dict[str, str]:
    """Secrets from the environment; in demo mode, generated ones fill the gaps."""
    given = {name: _read(env, name) for name in _SECRET_NAMES}
    if not is_demo:
        for name, value in given.items():
            if value is None:
                raise ConfigError(f"{name} is required when Twilio credentials are set")
        return given  # type: ignore[return-value]
    generated = demo.load_or_create_secrets(recordings_dir / ".state")
    return {**generated, **{k: v for k, v in given.items() if v is not None}}
