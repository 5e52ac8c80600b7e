"""Sending fetch tasks by name, so the web tier never imports task code."""

from __future__ import annotations

import os
from functools import cache

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from .publish import FastPublisher


@cache
def _publisher(celery: Celery, r: redis.Redis, pid: int) -> FastPublisher:
    """This process's publisher (``pid``: a forked child never shares its parent's socket).

    It holds one connection to r's server: redis-py's single-connection client
    skips a pool's checkout and release, ~40 us of CPU per webhook here. The
    checkout is also what notices a socket Redis closed (a restart, an idle
    timeout), so the connection gets one immediate retry instead: redis-py
    reconnects and resends (a resent claim finds itself taken: no second task).
    Redis being down raises the same ConnectionError as any command would.
    """
    pool = r.connection_pool
    own = redis.ConnectionPool(
        connection_class=pool.connection_class,
        **{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 1)},
    )
    return FastPublisher(celery, redis.Redis(connection_pool=own, single_connection_client=True))


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

    Returns True when a task was sent. One Redis command (worker.publish):
    remember the callback (``webhook_status``), take the enqueue claim, push
    the task. The web tier never waits for the download.
    """
    if sid.startswith("RE"):
        name, args = "recordings.fetch", [sid, fmt, call_sid, recorded_at]
    else:
        name, args = "recordings.fetch_call", [sid, fmt]
    webhook = (webhook_status, call_sid or "") if webhook_status else None
    if not _publisher(celery, r, os.getpid()).claim_and_push(sid, fmt, name, args, webhook):
        return False
    # No log line here: each caller logs its own event with enqueued=…
    # (one line per event, and a second line per webhook cost measurable CPU).
    metrics.ENQUEUED.labels(reason).inc()
    return True


def enqueue_leg(celery: Celery, child_sid: str, parent_sid: str, fmt: str) -> None:
    """Queue the durable recording of a child leg (the worker owns the volume)."""
    celery.send_task("recordings.record_leg", args=[child_sid, parent_sid, fmt])
