"""Sending fetch tasks by name, so the web tier never imports task code."""

from __future__ import annotations

import logging

import redis
from celery import Celery

from . import metrics, status

log = logging.getLogger(__name__)


def enqueue_fetch(
    celery: Celery,
    r: redis.Redis,
    sid: str,
    fmt: str,
    reason: str,
    call_sid: str | None = None,
    recorded_at: str | None = None,
) -> bool:
    """Queue a fetch of a RecordingSid or CallSid unless one was queued just now.

    Returns True when a task was sent. Sending is cheap (one pooled broker
    connection per process); the web tier never waits for the download.
    """
    if not status.claim_enqueue(r, sid, fmt):
        return False
    try:
        if sid.startswith("RE"):
            celery.send_task("recordings.fetch", args=[sid, fmt, call_sid, recorded_at])
        else:
            celery.send_task("recordings.fetch_call", args=[sid, fmt])
    except Exception:
        status.release_enqueue(r, sid, fmt)
        raise
    metrics.ENQUEUED.labels(reason).inc()
    log.info("fetch.enqueued", extra={"sid": sid, "format": fmt, "reason": reason})
    return True


def enqueue_leg(celery: Celery, child_sid: str, parent_sid: str, fmt: str) -> None:
    """Queue the durable recording of a child leg (the worker owns the volume)."""
    celery.send_task("recordings.record_leg", args=[child_sid, parent_sid, fmt])
