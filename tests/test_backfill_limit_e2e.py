"""A backfill of thousands of recordings under Twilio's concurrency limit: none refused, none fetched twice.

``make test`` backfills 2,000 (about 40 s: three requests at a time is the
point); ``BACKFILL_TEST_RECORDINGS=10000`` runs the issue's 10,000.

Real redis-server, two Celery workers of four processes each, gunicorn, nginx
and the simulator enforcing the account's limit (and counting what it refused).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import pytest

from stack.local import Stack
from stack.ports import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.twilio_kinds]

RECORDINGS = int(os.environ.get("BACKFILL_TEST_RECORDINGS", "2000")) // 1000 * 1000 or 1000
LIMIT = 3


def _cli(stack: Stack, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args], env=stack.env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_backfill_of_thousands_of_recordings_never_exceeds_the_limit(tmp_path):
    overrides = {"TWILIO_MAX_CONCURRENT_REQUESTS": str(LIMIT), "RETRY_BACKOFF_SECONDS": "0.2"}
    with Stack(tmp_path / "stack", overrides=overrides) as stack:
        stack.start_all(workers=2, concurrency=4)
        stack.sim("POST", "/_sim/limits", json={"max_concurrent": LIMIT})
        for _ in range(RECORDINGS // 1000):
            body = {"size": 1024, "recordings": 1000, "date_created": "2026-03-01T10:00:00Z"}
            stack.sim("POST", "/_sim/calls", json=body, timeout=120)
        started = time.monotonic()
        report = _cli(stack, "backfill", "--since", "2026-03-01")
        assert (report["found"], report["enqueued"]) == (RECORDINGS, RECORDINGS)

        def kept() -> bool:
            return sum(1 for _ in stack.recordings.glob("*/RE*.mp3.json")) == RECORDINGS  # a sidecar each

        wait_for(kept, RECORDINGS / 10, f"{RECORDINGS} recordings kept", interval=1.0)
        stats = stack.sim("GET", "/_sim/stats").json()
        assert stats["concurrency"]["over_limit"] == 0  # Twilio never had to refuse one
        assert stats["concurrency"]["in_flight_max"] <= LIMIT
        assert stats["media_gets_total"] == RECORDINGS  # each fetched once
        # For a reader: pytest -o log_cli=true --log-cli-level=INFO
        logging.getLogger(__name__).info(
            "backfill.limited recordings=%d seconds=%.1f in_flight_max=%d",
            RECORDINGS,
            time.monotonic() - started,
            stats["concurrency"]["in_flight_max"],
        )
