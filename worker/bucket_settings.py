"""The object-storage settings: ``STORAGE_URL=s3://BUCKET/PREFIX`` and the bucket's credentials.

Read by ``worker.config`` with the rest of the environment. Unset, the
volume (RECORDINGS_DIR) is the source of truth, as it always was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_REGION = "us-east-1"
# Where stack.rgw keeps the endpoint and keys of the gateway `make run` starts (RUNTIME_DIR/rgw/).
LOCAL_GATEWAY_DIR = "rgw"
CREDENTIALS_FILE = "s3-credentials.json"
# S3's bucket naming rules (lower case, digits, dots and hyphens, 3-63 characters).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


@dataclass(frozen=True)
class BucketSettings:
    """Where verified recordings live when they live in a bucket."""

    bucket: str
    prefix: str  # "" or "some/path", no slashes at either end
    endpoint_url: str | None  # None: AWS itself; set: path-style requests to it
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str

    def key(self, name: str) -> str:
        """The object key of ``name`` under the prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name


def _value(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    return value or None


def _storage_url(raw: str) -> tuple[str, str]:
    parts = urlsplit(raw)
    prefix = parts.path.strip("/")
    if parts.scheme != "s3" or not _BUCKET.fullmatch(parts.netloc or "") or parts.query or parts.fragment:
        raise ConfigError(f"STORAGE_URL is malformed: expected s3://BUCKET/PREFIX, got {raw!r}")
    if prefix and not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"STORAGE_URL is malformed: the prefix may hold A-Z a-z 0-9 . _ - and /, got {prefix!r}")
    return parts.netloc, prefix


def _endpoint(raw: str | None) -> str | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"S3_ENDPOINT_URL is malformed: expected an http(s) origin, got {raw!r}")
    return raw.rstrip("/")


def _local_gateway(runtime_dir: Path) -> dict[str, str] | None:
    """Endpoint and keys of the local gateway `make run` started under ``runtime_dir``, if any."""
    try:
        found = json.loads((runtime_dir / LOCAL_GATEWAY_DIR / CREDENTIALS_FILE).read_text())
    except (OSError, ValueError):
        return None
    keys = ("endpoint", "access_key", "secret_key")
    return found if isinstance(found, dict) and all(isinstance(found.get(k), str) for k in keys) else None


def bucket_settings(env: Mapping[str, str], runtime_dir: Path | None = None) -> BucketSettings | None:
    """BucketSettings from the environment, None when STORAGE_URL is unset; ConfigError naming a bad variable.

    With STORAGE_URL alone (no endpoint, no keys), the local gateway `make run`
    started under ``runtime_dir`` is used when there is one.
    """
    raw = _value(env, "STORAGE_URL")
    if raw is None:
        return None
    bucket, prefix = _storage_url(raw)
    endpoint = _endpoint(_value(env, "S3_ENDPOINT_URL"))
    key_id, secret = _value(env, "AWS_ACCESS_KEY_ID"), _value(env, "AWS_SECRET_ACCESS_KEY")
    local = _local_gateway(runtime_dir) if runtime_dir and not (endpoint or key_id or secret) else None
    if local:
        endpoint, key_id, secret = local["endpoint"], local["access_key"], local["secret_key"]
    for name, value in (("AWS_ACCESS_KEY_ID", key_id), ("AWS_SECRET_ACCESS_KEY", secret)):
        if value is None:
            # nginx signs its reads of a private bucket with these keys: they must be given.
            raise ConfigError(f"{name} is required when STORAGE_URL is set")
    return BucketSettings(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        access_key_id=key_id,  # type: ignore[arg-type]
        secret_access_key=secret,  # type: ignore[arg-type]
        region=_value(env, "AWS_REGION") or DEFAULT_REGION,
    )
