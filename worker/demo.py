"""Demo-mode secrets: generated once, kept on the volume, reused after restarts."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from . import atomic
from .errors import ConfigError

SECRETS_FILE = "demo-secrets.json"


def _generate() -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": "AC" + secrets.token_hex(16),
        "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
        "API_TOKEN": secrets.token_urlsafe(24),
        "PLAYBACK_SIGNING_KEY": secrets.token_urlsafe(32),
        "FLOWER_BASIC_AUTH": "admin:" + secrets.token_urlsafe(12),
    }


def load_or_create_secrets(state_dir: Path) -> dict[str, str]:
    """Return the demo secrets under ``state_dir``, creating them on first use.

    Creation links a complete temp file into place (never replacing one), so
    concurrent first starts of several processes agree on one set of secrets.
    """
    path = state_dir / SECRETS_FILE
    if not path.exists():
        try:
            atomic.write_bytes(path, json.dumps(_generate()).encode(), mode=0o600, replace=False)
        except OSError as exc:
            raise ConfigError(
                f"RECORDINGS_DIR is not writable for demo secrets ({exc.strerror}): {state_dir}"
            ) from None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"RECORDINGS_DIR holds an unreadable {path}: {exc}") from None
