"""Celery tasks: thin wrappers that unpack SIDs and call the domain functions."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from functools import cache

import redis
import requests
from celery import Celery, Task, shared_task
from twilio.rest import Client

from . import evict, fetch, metrics, playlog, reconcile, resolve, retention, status, storage, twilio_api
from .config import Settings
from .errors import LockBusy, RecordingNotFound, UpstreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """Per-process clients, made once after the pool process forked."""

    settings: Settings
    redis: redis.Redis
    session: requests.Session
    twilio: Client


@cache
def _resources(app: Celery, pid: int) -> Resources:
    settings: Settings = app.rc_settings
    return Resources(
        settings=settings,
        redis=redis.Redis.from_url(settings.redis_url),
        session=twilio_api.new_session(settings),
        twilio=twilio_api.make_client(settings),
    )


def resources(app: Celery) -> Resources:
    """Clients for this process; keyed on the pid so forks do not share sockets."""
    return _resources(app, os.getpid())


def _retry_or_fail(task: Task, res: Resources, sid: str, fmt: str, exc: Exception):
    """Retry with exponential backoff and jitter, or record a final failure."""
    settings = res.settings
    if task.request.retries >= settings.download_max_retries:
        status.set_state(res.redis, sid, fmt, "failed", error=str(exc), attempts=task.request.retries + 1)
        status.release_enqueue(res.redis, sid, fmt)
        metrics.DOWNLOADS.labels("failed").inc()
        log.error(
            "download.failed",
            extra={"recording_sid": sid, "format": fmt, "attempts": task.request.retries + 1, "reason": str(exc)},
        )
        raise exc
    # Exponential backoff with "equal jitter" (half fixed, half random),
    # in float seconds so tests can use sub-second steps.
    ceiling = min(settings.retry_backoff_max_seconds, settings.retry_backoff_seconds * 2**task.request.retries)
    countdown = round(random.uniform(ceiling / 2, ceiling), 3)
    metrics.DOWNLOADS.labels("retried").inc()
    log.warning(
        "download.retry",
        extra={
            "recording_sid": sid,
            "format": fmt,
            "attempt": task.request.retries + 1,
            "countdown_s": countdown,
            "reason": str(exc),
        },
    )
    raise task.retry(exc=exc, countdown=countdown, max_retries=settings.download_max_retries)


def _not_found(res: Resources, sid: str, fmt: str, exc: RecordingNotFound) -> dict:
    status.set_state(res.redis, sid, fmt, "not_found", error=str(exc))
    status.release_enqueue(res.redis, sid, fmt)
    log.warning("recording.not_found", extra={"sid": sid, "format": fmt, "reason": str(exc)})
    return {"sid": sid, "result": "not_found"}


def _guarded(task: Task, res: Resources, sid: str, fmt: str, work):
    """Run ``work`` and turn the domain's outcomes into Celery's: retry or finish.

    Returns ``work``'s result, or a result dict when the SID turned out unknown.
    """
    try:
        return work()
    except LockBusy as exc:
        # Wait out the holder's TTL: if it is alive the file will be there,
        # if it died (SIGKILL, lost host) its lock expires and we take over.
        countdown = round(exc.ttl_left + random.uniform(0.2, 1.0), 3)
        log.info("download.lock_busy", extra={"sid": sid, "format": fmt, "countdown_s": countdown})
        raise task.retry(exc=exc, countdown=countdown, max_retries=None) from None
    except RecordingNotFound as exc:
        return _not_found(res, sid, fmt, exc)
    except (UpstreamError, redis.RedisError) as exc:
        _retry_or_fail(task, res, sid, fmt, exc)


@shared_task(bind=True, name="recordings.fetch")
def fetch_recording_task(
    self: Task, recording_sid: str, fmt: str, call_sid: str | None = None, recorded_at: str | None = None
) -> dict:
    """Download a recording by RecordingSid (from a webhook or a playback miss)."""
    res = resources(self.app)

    def work() -> dict:
        outcome = fetch.fetch_recording(recording_sid, fmt, res.settings, res.redis, res.session, call_sid, recorded_at)
        if call_sid and outcome.result == "cached":
            fetch.link_call_and_legs(res.settings, call_sid, recording_sid, fmt)
        return {"sid": recording_sid, "result": outcome.result, "bytes": outcome.bytes}

    return _guarded(self, res, recording_sid, fmt, work)


@shared_task(bind=True, name="recordings.fetch_call")
def fetch_call_task(self: Task, call_sid: str, fmt: str) -> dict:
    """Resolve a CallSid (parent or child leg) to its recording and fetch it."""
    res = resources(self.app)

    def work() -> dict:
        found = resolve.resolve_call(call_sid, res.settings, res.twilio)
        outcome = fetch.fetch_recording(
            found.recording_sid, fmt, res.settings, res.redis, res.session, found.owner_call_sid, found.recorded_at
        )
        fetch.link_call_and_legs(res.settings, found.owner_call_sid, found.recording_sid, fmt)
        storage.link_call(res.settings.recordings_dir, call_sid, found.recording_sid, fmt)
        status.clear_state(res.redis, call_sid, fmt)
        return {"sid": call_sid, "recording_sid": found.recording_sid, "result": outcome.result}

    return _guarded(self, res, call_sid, fmt, work)


@shared_task(bind=True, name="recordings.record_leg")
def record_leg_task(self: Task, child_sid: str, parent_sid: str, fmt: str) -> dict:
    """Keep a child leg's parent on the volume and link it if already cached."""
    res = resources(self.app)
    root = res.settings.recordings_dir
    storage.record_leg(root, child_sid, parent_sid)
    recording_sid = storage.resolve_link(root, parent_sid, fmt)
    if recording_sid:
        storage.link_call(root, child_sid, recording_sid, fmt)
    return {"child": child_sid, "parent": parent_sid, "linked": recording_sid}


@shared_task(bind=True, name="recordings.reconcile")
def reconcile_task(self: Task) -> dict:
    """Re-enqueue what the volume is missing (periodic, from Celery beat)."""
    res = resources(self.app)
    return reconcile.reconcile(res.settings, res.redis, res.twilio, self.app).as_dict()


@shared_task(bind=True, name="maintenance.ingest_playlog")
def ingest_playlog_task(self: Task) -> dict:
    """Count nginx's hits and stamp last-played times (periodic)."""
    res = resources(self.app)
    return playlog.ingest(res.settings, res.redis).as_dict()


@shared_task(bind=True, name="maintenance.evict")
def evict_task(self: Task) -> dict:
    """Stay within CACHE_MAX_BYTES, least recently played first (periodic)."""
    res = resources(self.app)
    playlog.ingest(res.settings, res.redis)  # fresh last-played stamps first
    return evict.evict(res.settings, res.redis).as_dict()


@shared_task(bind=True, name="maintenance.delete_from_twilio")
def delete_from_twilio_task(self: Task) -> dict:
    """Delete Twilio's copy of verified recordings (opt-in, periodic)."""
    res = resources(self.app)
    return retention.delete_verified(res.settings, res.redis, res.session, res.twilio).as_dict()
