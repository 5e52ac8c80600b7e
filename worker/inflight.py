"""The ledger of downloads in flight: what each holder is doing, so its work outlives it.

Celery hands a killed pool process's task out again at once
(``task_reject_on_worker_lost``), but a whole worker killed mid-download
leaves its message unacknowledged until ``BROKER_VISIBILITY_TIMEOUT`` (hours,
since it must exceed the longest task). So each holder of a download lock
also writes the download here: a sorted set scored by when its lease runs
out, and the task that redoes it. The holder renews the lease with the lock;
every worker's sweep (``worker.recovery``, every few seconds) re-sends the
task of an entry whose lock is gone (the lease ran out) or whose holder is
provably dead on this machine (``worker.holders``), and takes it off the
ledger in the same Lua script, so one sweep re-sends it once.

Lost with Redis: then nothing was in flight that Redis knew of, and the
periodic reconcile covers what a webhook announced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis

from . import holders, keys

log = logging.getLogger(__name__)

# Scores are Redis's clock in milliseconds, so hosts' clocks never matter.
_ENTER = """
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""

# ARGV: member, holder token, lease ms. Renews only the entry this holder wrote.
_RENEW = """
local work = redis.call('HGET', KEYS[2], ARGV[1])
if not work or cjson.decode(work).holder ~= ARGV[2] then return 0 end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[3]), ARGV[1])
return 1
"""

# ARGV: member, holder token. Leaves only the entry this holder wrote.
_LEAVE = """
local work = redis.call('HGET', KEYS[2], ARGV[1])
if work and cjson.decode(work).holder == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
"""

# KEYS: ledger, work, the download lock. ARGV: member, holder token seen, '1' when that holder is dead.
# Takes the entry off the ledger and returns its work when the download is orphaned:
# its lock is gone (the lease ran out) or still held by the dead holder (then freed).
_CLAIM = """
local work = redis.call('HGET', KEYS[2], ARGV[1])
if not work or cjson.decode(work).holder ~= ARGV[2] then return false end
local held = redis.call('GET', KEYS[3])
if held then
  if held ~= ARGV[2] or ARGV[3] ~= '1' then
    if held == ARGV[2] then
      local left = redis.call('PTTL', KEYS[3])
      local now = redis.call('TIME')
      redis.call('ZADD', KEYS[1], now[1] * 1000 + math.floor(now[2] / 1000) + left, ARGV[1])
    end
    return false
  end
  redis.call('DEL', KEYS[3])
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return work
"""


def _member(sid: str, fmt: str) -> str:
    return f"{sid}.{fmt}"


@dataclass(frozen=True)
class Orphan:
    """A download whose holder died: the task to send again, and why."""

    member: str
    task: str
    args: list
    holder: str
    reason: str  # "holder_dead" (seen on this machine) or "lease_expired"

    @property
    def holder_name(self) -> str:
        """The dead holder's PID for a log line."""
        return holders.describe(self.holder)


class Ledger:
    """The in-flight downloads of one Redis (``keys.INFLIGHT`` and ``keys.INFLIGHT_WORK``)."""

    def __init__(self, r: redis.Redis):
        self.redis = r
        self._enter = r.register_script(_ENTER)
        self._renew = r.register_script(_RENEW)
        self._leave = r.register_script(_LEAVE)
        self._claim = r.register_script(_CLAIM)

    @property
    def _keys(self) -> list[str]:
        return [keys.INFLIGHT, keys.INFLIGHT_WORK]

    def enter(self, sid: str, fmt: str, holder: str, task: str, args: list, lease_seconds: float) -> None:
        """Record that ``holder`` (a lock token) downloads ``sid``: ``task(*args)`` redoes it."""
        work = json.dumps({"task": task, "args": args, "holder": holder})
        self._enter(keys=self._keys, args=[_member(sid, fmt), work, int(lease_seconds * 1000)])

    def renew(self, sid: str, fmt: str, holder: str, lease_seconds: float) -> bool:
        """Push the lease on; False when the entry is no longer this holder's."""
        return bool(self._renew(keys=self._keys, args=[_member(sid, fmt), holder, int(lease_seconds * 1000)]))

    def leave(self, sid: str, fmt: str, holder: str) -> None:
        """The download ended (kept, or failed and left to Celery's retry): forget it."""
        self._leave(keys=self._keys, args=[_member(sid, fmt), holder])

    def orphans(self, limit: int = 1000, is_dead: Callable[[str], bool] = holders.is_dead) -> list[Orphan]:
        """Claim every download whose holder died; each is claimed by one caller only."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.zrange(keys.INFLIGHT, 0, limit - 1, withscores=True)
        (seconds, micros), entries = pipe.execute()
        if not entries:
            return []
        now_ms = seconds * 1000 + micros // 1000
        members = [member.decode() for member, _ in entries]
        works = dict(zip(members, self.redis.hmget(keys.INFLIGHT_WORK, members), strict=True))
        found = []
        for (_, score), member in zip(entries, members, strict=True):
            raw = works[member]
            holder = json.loads(raw)["holder"] if raw else ""
            dead = bool(raw) and is_dead(holder)
            if raw and not dead and score > now_ms:
                continue  # alive as far as anyone can tell, and renewing
            orphan = self._claim_one(member, holder, dead)
            if orphan is not None:
                found.append(orphan)
        return found

    def _claim_one(self, member: str, holder: str, dead: bool) -> Orphan | None:
        lock = keys.recording_lock(*member.rsplit(".", 1))
        raw = self._claim(keys=[*self._keys, lock], args=[member, holder, "1" if dead else "0"])
        if not raw:
            if not holder:  # a score with no work (a crash between the two writes): drop it
                self.redis.zrem(keys.INFLIGHT, member)
            return None
        work = json.loads(raw)
        return Orphan(member, work["task"], work["args"], holder, "holder_dead" if dead else "lease_expired")
