"""Bench-local what-if copies of the web app: proposed fixes measured without editing web/.

gunicorn loads them as factories, e.g. ``'bench.whatif_app:build("lean")'``.
Written while the webhook enqueued through ``Celery.send_task``; since commit
1c94394 the project pushes the task with one Lua EVALSHA (worker/publish.py),
so these variants now stand for the earlier paths it replaced:

``no-sent-event``
    The app with Celery's ``task_send_sent_event`` off (now the project's
    default too; with worker/publish.py it changes nothing on the webhook).

``lean``
    A copy of the recording-status view as of commit 1e92019: the two Redis
    writes (remember the webhook, claim the enqueue) in one pipelined round
    trip, then ``Celery.send_task`` without the sent event, one log line.

``lean-cached-client``
    ``lean`` plus kombu's Redis channel keeping its synchronous client: as
    shipped, ``kombu.transport.redis.Channel.conn_or_acquire`` builds a new
    ``redis.Redis`` (and its ~170 response callbacks) for every publish.
"""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, abort, request
from kombu.transport import redis as kombu_redis

from web import create_app, services
from web.twilio_hooks import RECORDING_STATUSES, _recorded_at, _require_twilio
from worker import metrics, status
from worker.runtime import settings_or_exit
from worker.sids import require_sid

log = logging.getLogger("web.twilio_hooks")


def lean_recording_status() -> tuple[str, int]:
    """The recording-status view with its Redis writes pipelined (one round trip)."""
    started = time.monotonic()
    _require_twilio("recording")
    form = request.form
    recording_sid = require_sid(form.get("RecordingSid"), "RE", "RecordingSid")
    call_sid = require_sid(form.get("CallSid"), "CA", "CallSid")
    recording_status = form.get("RecordingStatus")
    if recording_status not in RECORDING_STATUSES:
        abort(400, f"RecordingStatus must be one of {', '.join(RECORDING_STATUSES)}")
    recorded_at = _recorded_at(form.get("RecordingStartTime"))
    svc = services()
    fmt = svc.settings.recording_format
    pipe = svc.redis.pipeline(transaction=False)
    remembered = json.dumps({"status": recording_status, "call_sid": call_sid, "at": round(time.time(), 3)})
    pipe.set(f"rc:webhook:{recording_sid}", remembered, ex=status.STATE_TTL_SECONDS)
    if recording_status == "completed":
        pipe.set(f"rc:queued:{status.key(recording_sid, fmt)}", "1", nx=True, ex=status.QUEUED_TTL_SECONDS)
    replies = pipe.execute()
    enqueued = recording_status == "completed" and bool(replies[-1])
    if enqueued:
        try:
            svc.celery.send_task("recordings.fetch", args=[recording_sid, fmt, call_sid, recorded_at])
        except Exception:
            status.release_enqueue(svc.redis, recording_sid, fmt)
            raise
        metrics.ENQUEUED.labels("webhook").inc()
    metrics.WEBHOOKS.labels("recording", recording_status).inc()
    log.info(
        "webhook.recording_status",
        extra={
            "recording_sid": recording_sid,
            "enqueued": enqueued,
            "ms": round((time.monotonic() - started) * 1000, 2),
        },
    )
    return "", 204


def cache_kombu_sync_client() -> None:
    """Make kombu's Redis channel reuse one synchronous client instead of one per publish."""
    original = kombu_redis.Channel._create_client

    def create_client(self: kombu_redis.Channel, asynchronous: bool = False) -> object:
        if asynchronous:
            return original(self, asynchronous)
        client = self.__dict__.get("_bench_sync_client")
        if client is None:
            client = self.__dict__["_bench_sync_client"] = original(self, False)
        return client

    kombu_redis.Channel._create_client = create_client


def build(variant: str) -> Flask:
    """The real app, changed as ``variant`` says."""
    if variant not in ("no-sent-event", "lean", "lean-cached-client"):
        raise ValueError(f"unknown variant {variant!r}")
    app = create_app(settings_or_exit(exit_code=4))
    app.extensions["recording_cache"].celery.conf.task_send_sent_event = False
    if variant != "no-sent-event":
        app.view_functions["twilio.recording_status"] = lean_recording_status
    if variant == "lean-cached-client":
        cache_kombu_sync_client()
    return app
