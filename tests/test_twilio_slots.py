"""TWILIO_MAX_CONCURRENT_REQUESTS: the account's slots in Redis, under contention, and the adapter that holds them."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import responses

from worker import keys
from worker.errors import UpstreamError
from worker.twilio_slots import TwilioSlots, limit_session

AC = "AC" + "a" * 32
pytestmark = pytest.mark.real


def _slots(real_redis, limit: int, wait: float = 5.0, lease: float = 30.0) -> TwilioSlots:
    return TwilioSlots(real_redis, AC, limit, wait_seconds=wait, lease_seconds=lease)


def test_contending_threads_never_hold_more_slots_than_the_limit(real_redis):
    limit, holding, most, done = 3, [0], [0], []
    guard = threading.Lock()

    def work(slots: TwilioSlots) -> None:  # each thread its own instance, as processes would
        for _ in range(5):
            token = slots.acquire()
            with guard:
                holding[0] += 1
                most[0] = max(most[0], holding[0])
            time.sleep(0.005)
            with guard:
                holding[0] -= 1
            slots.release(token)
        done.append(1)

    threads = [threading.Thread(target=work, args=(_slots(real_redis, limit),)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(done) == 12 and most[0] == limit  # used to the full, never above
    assert real_redis.zcard(keys.twilio_slots(AC)) == 0


def test_a_dead_holders_slot_comes_back_when_its_lease_ends(real_redis):
    # A process killed while it held the only slot: its lease, nobody renewing it.
    real_redis.zadd(keys.twilio_slots(AC), {"dead": int(time.time() * 1000) + 300})
    started, slots = time.monotonic(), _slots(real_redis, 1)
    slots.release(slots.acquire())
    assert 0.2 <= time.monotonic() - started < 3


def test_a_live_holders_slot_is_renewed_past_its_lease(real_redis):
    holder = _slots(real_redis, 1, lease=0.3)
    token = holder.acquire()
    with pytest.raises(UpstreamError, match="all 1 Twilio request slots stayed busy"):
        _slots(real_redis, 1, wait=1.0).acquire()  # three leases long: renewed all along
    holder.release(token)
    other = _slots(real_redis, 1, wait=1.0)
    other.release(other.acquire())  # and free once released


def test_a_slot_is_held_until_a_streamed_response_is_closed(real_redis):
    slots = _slots(real_redis, 1, wait=0.2)
    session = requests.Session()
    limit_session(session, slots)
    with responses.RequestsMock() as mocked:
        mocked.get("https://api.twilio.test/media", body=b"x" * 1000)
        mocked.get("https://api.twilio.test/resource", json={})
        streamed = session.get("https://api.twilio.test/media", stream=True)
        with pytest.raises(UpstreamError):
            session.get("https://api.twilio.test/resource")  # the download holds the only slot
        streamed.close()
        assert session.get("https://api.twilio.test/resource").status_code == 200
        assert session.get("https://api.twilio.test/resource").status_code == 200  # released after each
    assert real_redis.zcard(keys.twilio_slots(AC)) == 0
