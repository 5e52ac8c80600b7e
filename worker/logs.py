"""Structured logs: one line per event, key=value or JSON (LOG_FORMAT).

Call sites log an event name as the message and the facts as ``extra``::

    log.info("download.done", extra={"recording_sid": sid, "bytes": n, "ms": 12})
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from functools import lru_cache

from celery import current_task

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_HINTS = ("token", "password", "secret", "authorization", "signing_key")
_NEEDS_QUOTES = re.compile(r'[ "=\n]')


# Both cached: a busy web tier logs the same few keys, within the same second,
# thousands of times a second.
@lru_cache(maxsize=256)
def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(hint in lowered for hint in _SECRET_HINTS)


@lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second))


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": f"{_second(int(record.created))}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": record.getMessage(),
    }
    task = current_task._get_current_object() if current_task else None
    if task is not None and task.request.id:
        # Every line a task logs names the task, as Flower shows it.
        fields["task_id"], fields["task"] = task.request.id, task.name
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if _is_secret(key):
            value = "[redacted]"
        fields[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        fields["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    return fields


def _kv_value(value: object) -> str:
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=info event=download.done recording_sid=RE… bytes=…``."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_kv_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send every logger's records to stderr in the chosen structured format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines come from nginx; these libraries are too chatty.
    for noisy in ("urllib3", "werkzeug", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
