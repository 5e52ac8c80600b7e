"""Build the Celery app from Settings; no configuration is read at import time."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from .config import Settings
from .keys import QUEUE


def create_celery(settings: Settings) -> Celery:
    """A Celery app on REDIS_URL, configured for at-least-once downloads.

    acks_late + reject_on_worker_lost: a task is acknowledged only after it
    finished, and one whose process died is put back, so killing a worker
    loses no accepted work. The visibility timeout is longer than the longest
    download so a slow task is not handed to a second worker meanwhile.
    """
    app = Celery("recording_cache", broker=settings.redis_url, include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        # Flower learns of a task from the worker's events (received, started,
        # retried, succeeded/failed); a "sent" event per publish would double
        # the webhook's broker work for one more state.
        task_send_sent_event=False,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(1, settings.task_time_limit - 30),
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            # Sweep for messages of a worker that died without acking (SIGKILL,
            # lost host) at least every minute; kombu's default is ~100 s
            # between real scans. They are handed out again once older than
            # the visibility timeout; the periodic reconcile catches them
            # sooner when a webhook announced them.
            "unacked_restore_interval": max(1, min(60, settings.broker_visibility_timeout // 2)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 2,
        },
        broker_connection_timeout=2,
        # A webhook answers 503 quickly when Redis is down instead of hanging.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        broker_connection_retry_on_startup=True,
        # A download in flight when Redis restarts keeps going: its file lands,
        # and a redelivery (if the ack was lost) finds it cached.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        timezone="UTC",
        beat_schedule={
            # Each expires after its own period: a stopped worker does not come
            # back to a backlog of stale maintenance runs.
            name: {"task": task, "schedule": every, "options": {"expires": every.total_seconds()}}
            for name, task, every in (
                ("reconcile", "recordings.reconcile", timedelta(minutes=10)),
                # Playlog ingestion, eviction and the index check are sent only when due
                # (worker.maintenance.due, on each worker's timer): none at idle.
                ("delete-from-twilio", "maintenance.delete_from_twilio", timedelta(hours=1)),
                ("sync-accounts", "accounts.sync", timedelta(minutes=5)),
            )
        },
    )
    return app
