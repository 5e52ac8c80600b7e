"""The worker's own timers: take over the downloads of holders that died, and send due maintenance.

A Celery bootstep runs ``resend_orphans`` on the worker's own timer, in its
main process, so recovery needs no beat and no task of its own (Flower shows
the re-sent fetch, not a sweep every two seconds). Each orphan is claimed in
Redis by one sweep only (``worker.inflight``), however many workers sweep.
"""

from __future__ import annotations

import logging

import redis
from celery import bootsteps

from . import metrics, resources
from .inflight import Ledger, Orphan
from .maintenance import due
from .publish import FastPublisher

log = logging.getLogger(__name__)

# With LOCK_TTL_SECONDS (10 s) this bounds a takeover on another host at about 12 s.
SWEEP_SECONDS = 2.0


def resend_orphans(r: redis.Redis, publisher: FastPublisher) -> list[Orphan]:
    """Send again the task of every download whose holder died; one line each."""
    orphans = Ledger(r).orphans()
    for orphan in orphans:
        publisher.push(orphan.task, orphan.args)
        metrics.RECOVERED.labels(orphan.reason).inc()
        sid, fmt = orphan.member.rsplit(".", 1)
        log.warning(
            "download.recovered",
            extra={"recording_sid": sid, "format": fmt, "reason": orphan.reason, "dead_holder": orphan.holder_name},
        )
    return orphans


class MaintenanceTick(bootsteps.StartStopStep):
    """Send each maintenance job that has work (``maintenance.due``) every CHECK_SECONDS, and no other."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        self.tref = worker.timer.call_repeatedly(due.CHECK_SECONDS, self.tick, priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()

    def tick(self) -> None:
        res = resources.current()
        try:
            for job in due.due(res.settings, res.redis):
                res.publisher.push(job, [])
        except redis.RedisError as exc:
            log.debug("maintenance.check_failed", extra={"reason": str(exc)[:120]})


class RecoverySweep(bootsteps.StartStopStep):
    """``resend_orphans`` every SWEEP_SECONDS on the worker's timer (Celery's documented bootstep pattern)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        self.tref = worker.timer.call_repeatedly(SWEEP_SECONDS, self.sweep, priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()

    def sweep(self) -> None:
        res = resources.current()
        try:
            resend_orphans(res.redis, res.publisher)
        except redis.RedisError as exc:  # Redis away: the next sweep tries again
            log.debug("recovery.sweep_failed", extra={"reason": str(exc)[:120]})
