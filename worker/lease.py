"""The right to download one recording: its lock, its ledger entry, and a heartbeat renewing both.

The heartbeat is a thread, not the download's progress, so a live holder
keeps its lease through a slow read, an upload or a Twilio wait, and the
lease (``LOCK_TTL_SECONDS``) can stay short: a holder that dies stops
renewing and its work is taken over within seconds (``worker.inflight``).
A holder that finds its lock lost stops before its file is put in place.
"""

from __future__ import annotations

import logging
import threading

import redis
from redis.exceptions import LockNotOwnedError

from .errors import LockLost
from .inflight import Ledger
from .locks import RecordingLock, release_quietly

log = logging.getLogger(__name__)


class DownloadLease:
    """Hold ``recording:{sid}.{fmt}`` and its ledger entry; ``redo`` is the task that redoes the work."""

    def __init__(self, r: redis.Redis, sid: str, fmt: str, ttl: float, redo: tuple[str, list]):
        self.sid, self.fmt, self.ttl, self.redo = sid, fmt, ttl, redo
        self.lock = RecordingLock(r, sid, fmt, ttl)
        self.ledger = Ledger(r)
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lock (free, or from a holder dead on this machine), write the ledger, start the heartbeat."""
        if not self.lock.acquire():
            return False
        if self.lock.taken_from:
            log.warning(
                "lock.taken_over",
                extra={"recording_sid": self.sid, "format": self.fmt, "dead_holder": self.lock.taken_from},
            )
        try:
            self.ledger.enter(self.sid, self.fmt, self.lock.token, *self.redo, lease_seconds=self.ttl)
        except redis.RedisError:
            release_quietly(self.lock, recording_sid=self.sid, format=self.fmt)
            raise
        self._beat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        self._beat.start()
        return True

    def check(self, _written: int = 0) -> None:
        """Raise LockLost once the heartbeat found the lock taken: the caller must not put its file in place."""
        if self._lost.is_set():
            raise LockLost(f"lost {self.lock.name} while downloading")

    def release(self) -> None:
        """Stop the heartbeat, leave the ledger, release the lock (quietly: its TTL frees it otherwise)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            self.ledger.leave(self.sid, self.fmt, self.lock.token)
        except redis.RedisError:
            # The sweep finds the entry with no lock and re-sends it; that fetch finds the file kept.
            log.warning("inflight.leave_failed", extra={"recording_sid": self.sid, "format": self.fmt})
        release_quietly(self.lock, recording_sid=self.sid, format=self.fmt)

    def ttl_left(self) -> float:
        """Seconds until the lock expires, whoever holds it."""
        return self.lock.ttl_left()

    def holder(self) -> str:
        """Who holds the lock now, for a log line."""
        return self.lock.holder()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.lock.reacquire()
                self.ledger.renew(self.sid, self.fmt, self.lock.token, self.ttl)
            except LockNotOwnedError:
                log.warning("lock.lost", extra={"recording_sid": self.sid, "format": self.fmt})
                self._lost.set()
                return
            except redis.RedisError:
                # Redis restarting: keep working and renew on the next beat;
                # the key (persisted) keeps its TTL meanwhile.
                log.warning("lock.renew_failed", extra={"recording_sid": self.sid, "format": self.fmt})
