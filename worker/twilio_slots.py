"""At most TWILIO_MAX_CONCURRENT_REQUESTS requests to Twilio in flight, across
every worker process and host.

Twilio answers 429 (error 20429) when an account has too many concurrent
requests. Each request here first takes a slot: a member of one Redis sorted
set per account, scored by its lease's expiry. Taking one is a Lua script
(drop expired leases, count, add), so two processes never both take the last
slot. A process renews the leases it holds from one background thread, so a
long media download keeps its slot and a killed process's slots come back
within a lease. The HTTP adapter takes a slot for each request and gives it
back when the response is closed: for a streamed download, at its end.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time

import redis
from requests.adapters import HTTPAdapter

from . import keys
from .errors import UpstreamError

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
_POLL_SECONDS = (0.005, 0.05)  # between tries while every slot is taken, with jitter

# KEYS[1] the account's slots; ARGV: limit, lease ms, token. Redis's own clock,
# so hosts' clocks need not agree.
_TAKE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""

# KEYS[1] the account's slots; ARGV: lease ms, tokens... Only leases still held are renewed.
_RENEW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', ms + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"""


class TwilioSlots:
    """The account's concurrency slots in Redis; one instance per process."""

    def __init__(
        self, r: redis.Redis, account_sid: str, limit: int, wait_seconds: float, lease_seconds: float = LEASE_SECONDS
    ):
        self.redis, self.key, self.limit = r, keys.twilio_slots(account_sid), limit
        self.wait_seconds, self.lease_ms = wait_seconds, int(lease_seconds * 1000)
        self._take, self._renew = r.register_script(_TAKE), r.register_script(_RENEW)
        self._held: set[str] = set()
        self._guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> str:
        """A slot's token, once one is free; UpstreamError after ``wait_seconds`` without one."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.wait_seconds
        try:
            while not self._take(keys=[self.key], args=[self.limit, self.lease_ms, token]):
                if time.monotonic() > deadline:
                    raise UpstreamError(f"all {self.limit} Twilio request slots stayed busy for {self.wait_seconds} s")
                time.sleep(random.uniform(*_POLL_SECONDS))
        except redis.RedisError as exc:
            raise UpstreamError(f"Twilio request slots unavailable: {type(exc).__name__}") from exc
        with self._guard:
            self._held.add(token)
            self._start_renewer()
        return token

    def release(self, token: str) -> None:
        """Give a slot back (a lost release only costs the slot until its lease ends)."""
        with self._guard:
            self._held.discard(token)
        try:
            self.redis.zrem(self.key, token)
        except redis.RedisError:
            log.warning("twilio_slots.release_failed", extra={"token": token})

    def _start_renewer(self) -> None:
        """Under the guard: a renewing thread while this process holds slots (it ends when none are held)."""
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew_while_held, name="twilio-slots", daemon=True)
            self._renewer.start()

    def _renew_while_held(self) -> None:
        while True:
            time.sleep(self.lease_ms / 3000)
            with self._guard:
                held = list(self._held)
                if not held:
                    self._renewer = None
                    return
            try:
                self._renew(keys=[self.key], args=[self.lease_ms, *held])
            except redis.RedisError:
                log.warning("twilio_slots.renew_failed", extra={"held": len(held)})


class SlotAdapter(HTTPAdapter):
    """requests' adapter that holds a Twilio slot from sending a request until its response is closed."""

    def __init__(self, slots: TwilioSlots, **kwargs):
        super().__init__(**kwargs)
        self.slots = slots

    def send(self, request, stream=False, **kwargs):
        token = self.slots.acquire()
        try:
            response = super().send(request, stream=stream, **kwargs)
        except BaseException:
            self.slots.release(token)
            raise
        if not stream or response.is_redirect:  # the body is read already, or is a redirect's (never closed)
            self.slots.release(token)
            return response
        close = response.close
        released = threading.Event()

        def close_and_release() -> None:
            try:
                close()
            finally:
                if not released.is_set():
                    released.set()
                    self.slots.release(token)

        response.close = close_and_release
        return response


def limit_session(session, slots: TwilioSlots) -> None:
    """Send every request of ``session`` (ours, or the twilio package's) through a slot."""
    adapter = SlotAdapter(slots)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
