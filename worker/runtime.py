"""Process start-up shared by every entry point: settings, logging, exit line."""

from __future__ import annotations

import logging
import sys

from .config import Settings, load_settings
from .errors import ConfigError
from .logs import configure_logging


def settings_or_exit(exit_code: int = 2) -> Settings:
    """Load settings and configure logging, or stop with one line naming the problem."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"recording-cache: configuration error: {exc}\n")
        raise SystemExit(exit_code) from None
    configure_logging(settings.log_format)
    logging.getLogger("recording_cache").debug("settings.loaded")
    return settings
