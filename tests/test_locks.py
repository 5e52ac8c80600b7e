"""The named Redis locks: the download lock's TTL and the maintenance jobs' guarded release."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker import keys, storage, volume_index
from worker.locks import MaintenanceLock, RecordingLock, release_quietly
from worker.maintenance import evict, playlog

RE = "RE" + "3" * 32


def test_the_download_lock_reports_its_holders_ttl(redis):
    holder = RecordingLock(redis, RE, "mp3", ttl=5)
    assert holder.acquire()
    assert 4 < RecordingLock(redis, RE, "mp3", ttl=5).ttl_left() <= 5
    assert not RecordingLock(redis, RE, "mp3", ttl=5).acquire()


@pytest.mark.parametrize("job", ["evict", "playlog", "retention"])
def test_a_maintenance_lock_that_expired_meanwhile_releases_quietly(redis, job):
    lock = MaintenanceLock(redis, job, ttl=60)
    assert lock.acquire()
    assert not MaintenanceLock(redis, job, ttl=60).acquire()  # one run at a time
    redis.delete(keys.maintenance_lock(job))  # as if its TTL ran out during a long pass
    assert MaintenanceLock(redis, job, ttl=60).acquire()  # the next run took it
    release_quietly(lock)  # not ours any more: no LockNotOwnedError
    assert redis.exists(keys.maintenance_lock(job))  # and the new holder keeps it


def test_a_maintenance_pass_finishes_when_its_lock_was_lost(settings, redis, monkeypatch):
    settings = replace(settings, cache_max_bytes=1)
    storage.write_media(settings.recordings_dir, RE, "mp3", [b"\xff\xfb" + b"\x00" * 100], 102)
    volume_index.rebuild(settings.recordings_dir, redis)

    def lose_the_lock(*args, **kwargs):
        redis.delete(keys.maintenance_lock("evict"))

    monkeypatch.setattr(evict, "_evict_oldest", lose_the_lock)
    assert evict.evict(settings, redis).files == 1
    assert playlog.ingest(settings, redis).lines == 0
