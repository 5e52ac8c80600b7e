"""Structured log lines: one per event, key=value or JSON, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from worker.logs import JsonFormatter, KeyValueFormatter

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def record(extra: dict, created: float = 1_800_000_000.25, exc_info=None) -> logging.LogRecord:
    rec = logging.getLogger("web.twilio_hooks").makeRecord(
        "web.twilio_hooks", logging.INFO, __file__, 1, "webhook.recording_status", (), exc_info, extra=extra
    )
    rec.created, rec.msecs = created, (created % 1) * 1000
    return rec


def key_values(line: str) -> dict[str, str]:
    pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line)
    return {key: json.loads(value) if value.startswith('"') else value for key, value in pairs}


def test_key_value_line_names_the_event_and_its_facts():
    line = KeyValueFormatter().format(record({"recording_sid": "RE" + "a" * 32, "bytes": 1024, "enqueued": True}))
    fields = key_values(line)
    assert "\n" not in line
    assert fields["ts"] == "2027-01-15T08:00:00.250Z"
    assert fields["event"] == "webhook.recording_status"
    assert (fields["level"], fields["logger"]) == ("info", "web.twilio_hooks")
    assert (fields["recording_sid"], fields["bytes"], fields["enqueued"]) == ("RE" + "a" * 32, "1024", "True")


@pytest.mark.parametrize("value", ["", "two words", 'a "quote"', "k=v", "line\nbreak"])
def test_key_value_quotes_what_would_break_the_line(value):
    line = KeyValueFormatter().format(record({"detail": value}))
    assert "\n" not in line
    assert key_values(line)["detail"] == value


def test_timestamps_follow_the_clock_across_seconds():
    formatter = KeyValueFormatter()
    stamps = [key_values(formatter.format(record({}, created=t)))["ts"] for t in (1_800_000_000.999, 1_800_000_001.0)]
    assert stamps == ["2027-01-15T08:00:00.999Z", "2027-01-15T08:00:01.000Z"]
    assert all(TS.match(stamp) for stamp in stamps)


SECRET_KEYS = ["auth_token", "API_TOKEN", "password", "client_secret", "Authorization", "signing_key"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secrets_are_redacted_in_both_formats(key):
    rec = record({key: "s3cr3t-value", "recording_sid": "RE" + "b" * 32})
    for formatter in (KeyValueFormatter(), JsonFormatter()):
        line = formatter.format(rec)
        assert "s3cr3t-value" not in line
        assert "[redacted]" in line
        assert "RE" + "b" * 32 in line


def test_json_line_has_the_same_fields_and_the_error():
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        rec = record({"recording_sid": "RE" + "c" * 32, "ms": 1.5}, exc_info=sys.exc_info())
    data = json.loads(JsonFormatter().format(rec))
    assert data["event"] == "webhook.recording_status"
    assert (data["recording_sid"], data["ms"]) == ("RE" + "c" * 32, 1.5)
    assert data["error"] == "OSError: [Errno 28] No space left on device"
    assert TS.match(data["ts"])
