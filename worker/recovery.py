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


class _Every(bootsteps.StartStopStep):
    """Run ``run`` every ``seconds`` on the worker's timer (Celery's documented bootstep pattern)."""

    requires = {"celery.worker.components:Timer"}
    seconds = 1.0
    first_after: float | None = None  # also once this soon after start

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.trefs: list = []

    def start(self, worker) -> None:
        self.trefs = [worker.timer.call_repeatedly(self.seconds, self._run_quietly, priority=10)]
        if self.first_after is not None:
            self.trefs.append(worker.timer.call_after(self.first_after, self._run_quietly, priority=10))

    def stop(self, worker) -> None:
        for tref in self.trefs:
            tref.cancel()

    def _run_quietly(self) -> None:
        try:
            self.run(resources.current())
        except redis.RedisError as exc:  # Redis away: the next round tries again
            log.debug("worker.timer_failed", extra={"step": type(self).__name__, "reason": str(exc)[:120]})

    def run(self, res: resources.Resources) -> None:
        raise NotImplementedError


class MaintenanceTick(_Every):
    """Send each maintenance job that has work (``maintenance.due``), and no other."""

    seconds = due.CHECK_SECONDS
    first_after = 1.0  # a volume to migrate, or an index to rebuild, is due at once

    def run(self, res: resources.Resources) -> None:
        for job in due.due(res.settings, res.redis):
            res.publisher.push(job, [])


class RecoverySweep(_Every):
    """``resend_orphans`` every SWEEP_SECONDS."""

    seconds = SWEEP_SECONDS

    def run(self, res: resources.Resources) -> None:
        resend_orphans(res.redis, res.publisher)
