"""The clients one worker process uses: Redis, Twilio's HTTP session and client, a publisher, the tier.

They are built by the worker's start-up hooks (``worker.celery_worker``):
in each prefork pool process after the fork (``worker_process_init``), and in
the main process for the solo and thread pools (``worker_init``). So no
socket is ever shared between processes, and tasks read them with
``current()`` instead of building their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import requests
from celery import Celery
from twilio.rest import Client

from . import tiers, twilio_api
from .config import Settings
from .publish import FastPublisher
from .twilio_slots import TwilioSlots


@dataclass(frozen=True)
class Resources:
    """Settings and the per-process clients tasks use."""

    settings: Settings
    redis: redis.Redis
    session: requests.Session
    twilio: Client
    publisher: FastPublisher
    tier: tiers.Tier  # the volume, or the bucket of STORAGE_URL

    @classmethod
    def build(cls, settings: Settings, celery: Celery) -> Resources:
        """Fresh clients for this process (they connect lazily, on first use)."""
        r = redis.Redis.from_url(settings.redis_url)
        slots = TwilioSlots(
            r,
            settings.twilio_account_sid,
            settings.twilio_max_concurrent_requests,
            wait_seconds=settings.download_read_timeout,
        )
        return cls(
            settings=settings,
            redis=r,
            session=twilio_api.new_session(settings, slots),
            twilio=twilio_api.make_client(settings, slots),
            publisher=FastPublisher(celery, r),
            tier=tiers.for_settings(settings),
        )


_current: Resources | None = None


def install(settings: Settings, celery: Celery) -> Resources:
    """Build this process's clients (a start-up hook calls it)."""
    global _current
    _current = Resources.build(settings, celery)
    return _current


def current() -> Resources:
    """This process's clients; only a worker started through worker.celery_worker has them."""
    if _current is None:
        raise RuntimeError("no worker resources: start the worker with `celery -A worker.celery_worker worker`")
    return _current
