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

from . import holders, keys

log = logging.getLogger(__name__)


# Replace the lock's value only if it is still the dead holder's token.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class RecordingLock(Lock):
    """``recording:{sid}.{fmt}``: one download of a recording at a time.

    The TTL is short so a crashed holder frees it within seconds; the holder
    renews it from a helper thread while it works (``fetch.heartbeat``). Its
    token names the holding process (``worker.holders``), so a process of the
    same machine takes over a dead holder's lock at once instead of waiting
    out the TTL.
    """

    def __init__(self, r: redis.Redis, recording_sid: str, fmt: str, ttl: float):
        # Not thread-local: a helper thread renews it (fetch.heartbeat).
        super().__init__(r, keys.recording_lock(recording_sid, fmt), timeout=ttl, blocking=False, thread_local=False)
        self._take_over = r.register_script(_TAKE_OVER)
        self.taken_from: str | None = None  # the dead holder this lock was taken over from

    def acquire(self, **kwargs) -> bool:  # type: ignore[override]
        """Take the lock free, or from a holder that is dead on this machine."""
        token = holders.token()
        if super().acquire(token=token, **kwargs):
            return True
        held = self.redis.get(self.name)
        if not holders.is_dead(held):
            return False
        if not self._take_over(keys=[self.name], args=[held, token, int(self.timeout * 1000)]):
            return False  # another process took it over first
        self.local.token = token.encode()
        self.taken_from = holders.describe(held)
        return True

    @property
    def token(self) -> str | None:
        """This holder's token while it holds the lock."""
        raw = self.local.token
        return raw.decode() if isinstance(raw, bytes) else raw

    def holder(self) -> str:
        """Who holds the lock now, for a log line."""
        return holders.describe(self.redis.get(self.name))

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
