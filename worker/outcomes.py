"""What a fetch's failure means for its task: retry, finish, or fail for good.

Plain functions with no Celery in them, so each outcome has a unit test; the
task (``worker.tasks``) only turns the answer into ``self.retry`` or a return.
The state a player and the API see (``failed``, ``not_found``) and the
metrics and log lines are recorded here, once per outcome.

The backoff is computed here rather than with Celery's ``retry_backoff``:
Celery's is whole seconds with "full" jitter (0 up to the step), so it can
retry at once, and it cannot express the sub-second steps the tests run with.
This one is "equal" jitter (half fixed, half random), in float seconds.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import redis

from . import metrics, status
from .config import Settings
from .errors import (
    LockBusy,
    RecordingNotFound,
    RecordingUnavailable,
    UpstreamError,
    UpstreamNotReady,
    UpstreamRateLimited,
)

log = logging.getLogger(__name__)

# Waits for Twilio's processing before a recording still not ready counts as a
# fault: about 8 hours at the default backoff's ceiling.
MAX_PROCESSING_WAITS = 100

# What the task may raise and still be settled here; anything else is a bug.
HANDLED = (LockBusy, RecordingNotFound, UpstreamError, redis.RedisError)


@dataclass(frozen=True)
class Retry:
    """Run the task again in ``countdown`` seconds (``max_retries`` None: no limit).

    ``waited``: this retry waits for Twilio to finish processing the recording;
    the task counts those apart, and they do not use up the retry budget.
    """

    countdown: float
    max_retries: int | None
    waited: bool = False


@dataclass(frozen=True)
class Finish:
    """The task is done: ``result`` is its return value."""

    result: dict


@dataclass(frozen=True)
class Fail:
    """Give up: the task fails with the error, and the recording shows ``failed``."""


Outcome = Retry | Finish | Fail


def backoff(retries: int, settings: Settings, uniform=random.uniform) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, with equal jitter."""
    ceiling = min(settings.retry_backoff_max_seconds, settings.retry_backoff_seconds * 2**retries)
    return round(uniform(ceiling / 2, ceiling), 3)


def settle(
    exc: Exception, retries: int, sid: str, fmt: str, settings: Settings, r: redis.Redis, waits: int = 0
) -> Outcome:
    """The outcome of a fetch of ``sid`` that raised ``exc`` after ``retries`` retries,
    ``waits`` of them for Twilio's processing."""
    if isinstance(exc, LockBusy):
        # Wait out the holder's lease: if it is alive the file will be there,
        # if it died (SIGKILL, lost host) its lock expires and we take over.
        countdown = round(exc.ttl_left + random.uniform(0.2, 1.0), 3)
        log.info(
            "download.skipped",
            extra={"sid": sid, "format": fmt, "reason": "lock_busy", "holder": exc.holder, "countdown_s": countdown},
        )
        return Retry(countdown, max_retries=None)
    if isinstance(exc, RecordingUnavailable) and exc.status in status.FINAL_STATUSES:
        status.set_final(r, sid, fmt, exc.status, exc.error_code, str(exc))
        status.release_enqueue(r, sid, fmt)
        log.warning(
            "recording.unavailable",
            extra={"recording_sid": sid, "format": fmt, "twilio_status": exc.status, "error_code": exc.error_code},
        )
        return Finish({"sid": sid, "result": exc.status, "error_code": exc.error_code})
    if isinstance(exc, RecordingNotFound):
        status.set_state(r, sid, fmt, "not_found", error=str(exc))
        status.release_enqueue(r, sid, fmt)
        log.warning("recording.not_found", extra={"sid": sid, "format": fmt, "reason": str(exc)})
        return Finish({"sid": sid, "result": "not_found"})
    if isinstance(exc, UpstreamRateLimited) and waits < MAX_PROCESSING_WAITS:
        # Another client of the account (or a limit set too high) used Twilio's
        # concurrency: a wait, not a fault. Twilio's Retry-After when it gave one.
        countdown = round(exc.retry_after + random.uniform(0, 1), 3) if exc.retry_after else backoff(waits, settings)
        log.warning("download.rate_limited", extra={"recording_sid": sid, "format": fmt, "countdown_s": countdown})
        metrics.DOWNLOADS.labels("rate_limited").inc()
        return Retry(countdown, max_retries=None, waited=True)
    if isinstance(exc, UpstreamNotReady) and waits < MAX_PROCESSING_WAITS:
        # Twilio is still processing the recording: worth waiting for, at the
        # backoff's pace, without using up the budget kept for faults.
        countdown = backoff(waits, settings)
        log.info("download.processing", extra={"recording_sid": sid, "format": fmt, "countdown_s": countdown})
        return Retry(countdown, max_retries=None, waited=True)
    retries -= waits
    attempts = retries + 1
    if retries >= settings.download_max_retries:
        status.set_state(r, sid, fmt, "failed", error=str(exc), attempts=attempts)
        status.release_enqueue(r, sid, fmt)
        metrics.DOWNLOADS.labels("failed").inc()
        log.error(
            "download.failed", extra={"recording_sid": sid, "format": fmt, "attempts": attempts, "reason": str(exc)}
        )
        return Fail()
    countdown = backoff(retries, settings)
    metrics.DOWNLOADS.labels("retried").inc()
    log.warning(
        "download.retry",
        extra={"recording_sid": sid, "format": fmt, "attempt": attempts, "countdown_s": countdown, "reason": str(exc)},
    )
    return Retry(countdown, max_retries=settings.download_max_retries + waits)
