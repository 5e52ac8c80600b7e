"""The Redis locks: named subclasses of redis-py's ``Lock`` (token-owned, with a TTL).

A lock that cannot be released (it expired, another process took it over, or
Redis is away) is left to its TTL: releasing never raises into the work it
guarded, which has already finished or failed on its own terms.
"""

from __future__ import annotations

import logging

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from . import keys

log = logging.getLogger(__name__)


class RecordingLock(Lock):
    """``recording:{sid}.{fmt}``: one download of a recording at a time.

    The TTL is short so a crashed holder frees it quickly; the holder extends
    it while its download streams.
    """

    def __init__(self, r: redis.Redis, recording_sid: str, fmt: str, ttl: float):
        # Not thread-local: a helper thread renews it while an upload runs (fetch.renewed).
        super().__init__(r, keys.recording_lock(recording_sid, fmt), timeout=ttl, blocking=False, thread_local=False)

    def ttl_left(self) -> float:
        """Seconds until the lock expires, whoever holds it (0 when it has)."""
        return max(0.0, self.redis.pttl(self.name) / 1000)


class MaintenanceLock(Lock):
    """``maintenance:{job}``: a periodic job runs once at a time across hosts.

    The TTL bounds how long a crashed run blocks the next one.
    """

    def __init__(self, r: redis.Redis, job: str, ttl: float):
        super().__init__(r, keys.maintenance_lock(job), timeout=ttl, blocking=False)


def release_quietly(lock: Lock, **facts: object) -> None:
    """Release ``lock``; if it expired, was taken over or Redis is away, its TTL frees it.

    ``facts`` go into the log line (a download's recording_sid and format).
    """
    try:
        lock.release()
    except (LockError, redis.RedisError):
        log.warning("lock.release_failed", extra=facts or {"lock": lock.name})
