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
    webhook_status: str | None = None,
) -> bool:
    """Queue a fetch of a RecordingSid or CallSid unless one was queued just now.

    Returns True when a task was sent. With ``webhook_status`` the callback is
    remembered in the same Redis round trip as the dedup claim: the webhook's
    hot path is one pipelined round trip plus the publish.
    """
    if not status.claim_enqueue(r, sid, fmt, remember=(webhook_status, call_sid) if webhook_status else None):
        return False
    args = [sid, fmt, call_sid, recorded_at] if sid.startswith("RE") else [sid, fmt]
    name = "recordings.fetch" if sid.startswith("RE") else "recordings.fetch_call"
    try:
        # argsrepr given: Celery would otherwise saferepr() the arguments itself.
        celery.send_task(name, args=args, argsrepr=repr(args), kwargsrepr="{}")
    except Exception:
        status.release_enqueue(r, sid, fmt)
        raise
    metrics.ENQUEUED.labels(reason).inc()
    log.info("fetch.enqueued", extra={"sid": sid, "format": fmt, "reason": reason})
    return True


def enqueue_leg(celery: Celery, child_sid: str, parent_sid: str, fmt: str) -> None:
    """Queue the durable recording of a child leg (the worker owns the volume)."""
    celery.send_task("recordings.record_leg", args=[child_sid, parent_sid, fmt])
