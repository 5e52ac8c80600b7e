"""A download's lease: holder identity, takeover of a dead holder's lock, the in-flight ledger, the heartbeat."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from worker import holders, keys, recovery
from worker.errors import LockLost
from worker.inflight import Ledger
from worker.lease import DownloadLease
from worker.locks import RecordingLock

RE = "RE" + "4" * 32
REDO = ("recordings.fetch", [RE, "mp3", None, None, "AC" + "0" * 32])


def dead_token() -> str:
    """The token a process of this machine made before it exited."""
    code = "from worker import holders; print(holders.token())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_a_token_names_this_machine_and_a_live_process():
    mine = holders.token()
    assert mine.startswith(holders.machine() + ":")
    assert not holders.is_dead(mine)
    assert holders.token() != mine  # a fresh random part each time


def test_only_a_process_of_this_machine_that_exited_is_dead():
    gone = dead_token()
    assert holders.is_dead(gone)
    other_machine = "0" * 36 + "/4026531836" + gone[len(holders.machine()) :]
    assert not holders.is_dead(other_machine)  # another host: only its lease tells
    for not_a_token in (None, b"", "a1b2c3", "x:y:z:w"):
        assert not holders.is_dead(not_a_token)


def test_a_reused_pid_is_not_mistaken_for_the_holder():
    machine, pid, _started, rand = holders.token().rsplit(":", 3)
    assert holders.is_dead(f"{machine}:{pid}:1:{rand}")  # this PID, started at another time


def test_a_dead_holders_lock_is_taken_over_at_once(real_redis):
    real_redis.set(keys.recording_lock(RE, "mp3"), dead_token(), px=60_000)
    lock = RecordingLock(real_redis, RE, "mp3", ttl=10)
    assert lock.acquire()
    assert lock.taken_from is not None and lock.owned()
    assert 9 < lock.ttl_left() <= 10


def test_a_live_holders_lock_is_never_taken(real_redis):
    holder = RecordingLock(real_redis, RE, "mp3", ttl=10)
    assert holder.acquire()
    assert not RecordingLock(real_redis, RE, "mp3", ttl=10).acquire()
    real_redis.set(holder.name, "another-host-token", px=60_000)  # not a token of this machine
    assert not RecordingLock(real_redis, RE, "mp3", ttl=10).acquire()


def test_the_ledger_forgets_a_download_that_ended(real_redis):
    ledger = Ledger(real_redis)
    ledger.enter(RE, "mp3", "tok", *REDO, lease_seconds=10)
    assert real_redis.zcard(keys.INFLIGHT) == 1
    ledger.leave(RE, "mp3", "another holder's token")
    assert real_redis.zcard(keys.INFLIGHT) == 1  # only its own entry
    ledger.leave(RE, "mp3", "tok")
    assert real_redis.zcard(keys.INFLIGHT) == 0 and real_redis.hlen(keys.INFLIGHT_WORK) == 0


def test_an_expired_lease_with_no_lock_is_claimed_by_one_sweep(real_redis):
    ledger = Ledger(real_redis)
    ledger.enter(RE, "mp3", "tok-of-another-host", *REDO, lease_seconds=0.05)
    time.sleep(0.1)
    first, second = ledger.orphans(), ledger.orphans()
    assert [(o.task, o.args, o.reason) for o in first] == [(REDO[0], REDO[1], "lease_expired")]
    assert second == []
    assert real_redis.zcard(keys.INFLIGHT) == 0


def test_a_live_holder_past_its_ledger_score_keeps_its_download(real_redis):
    lock = RecordingLock(real_redis, RE, "mp3", ttl=10)
    assert lock.acquire()
    ledger = Ledger(real_redis)
    ledger.enter(RE, "mp3", lock.token, *REDO, lease_seconds=0.05)  # the lock was renewed, the score not
    time.sleep(0.1)
    assert ledger.orphans() == []
    assert real_redis.zscore(keys.INFLIGHT, f"{RE}.mp3") > time.time() * 1000  # pushed on to the lock's expiry
    assert lock.owned()


def test_a_dead_holders_download_is_claimed_before_its_lease_runs_out(real_redis):
    gone = dead_token()
    real_redis.set(keys.recording_lock(RE, "mp3"), gone, px=60_000)
    ledger = Ledger(real_redis)
    ledger.enter(RE, "mp3", gone, *REDO, lease_seconds=60)
    [orphan] = ledger.orphans()
    assert orphan.reason == "holder_dead"
    assert not real_redis.exists(keys.recording_lock(RE, "mp3"))  # freed for the task sent again


def test_the_heartbeat_keeps_a_lease_past_its_ttl_and_leaves_no_trace(real_redis):
    lease = DownloadLease(real_redis, RE, "mp3", 0.3, REDO)
    assert lease.acquire()
    time.sleep(1.0)  # three TTLs: without the heartbeat lock and lease would have run out
    assert lease.lock.owned()
    assert Ledger(real_redis).orphans() == []
    lease.check()
    lease.release()
    assert not real_redis.exists(keys.recording_lock(RE, "mp3"), keys.INFLIGHT, keys.INFLIGHT_WORK)


def test_a_holder_that_lost_its_lock_stops(real_redis):
    lease = DownloadLease(real_redis, RE, "mp3", 0.3, REDO)
    assert lease.acquire()
    real_redis.set(lease.lock.name, "someone-else", px=60_000)  # expired while paused, then taken
    deadline = time.monotonic() + 2
    with pytest.raises(LockLost):
        while time.monotonic() < deadline:
            lease.check()
            time.sleep(0.02)
    lease.release()
    assert real_redis.get(lease.lock.name) == b"someone-else"  # the new holder keeps it


def test_the_sweep_sends_a_dead_holders_fetch_again(real_redis):
    gone = dead_token()
    real_redis.set(keys.recording_lock(RE, "mp3"), gone, px=60_000)
    Ledger(real_redis).enter(RE, "mp3", gone, *REDO, lease_seconds=60)
    sent = []

    class Publisher:
        def push(self, name, args):
            sent.append((name, args))

    recovery.resend_orphans(real_redis, Publisher())
    recovery.resend_orphans(real_redis, Publisher())
    assert sent == [REDO]
