"""The volume's index in Redis, and eviction on it: a pass costs what it removes."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from worker import keys, sidecar, storage, volume_index
from worker.locks import RecordingLock
from worker.maintenance import evict, playlog

MP3 = b"\xff\xfb\x90\x64" + b"\x00" * 996  # 1000 bytes


def sid(n: int) -> str:
    return f"RE{n:032x}"


def put(root, n: int, age: float, pinned: bool = False) -> str:
    """A recording on the volume, last used ``age`` seconds ago, with its sidecar."""
    recording = sid(n)
    path = storage.media_path(root, recording, "mp3")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MP3)
    past = time.time() - age
    os.utime(path, (past, past))
    facts = sidecar.Sidecar(recording_sid=recording, format="mp3", bytes=len(MP3), sha256="0" * 64, pinned=pinned)
    sidecar.write(root, facts)
    return recording


def test_a_recording_is_counted_once_and_forgotten_once(redis):
    volume_index.add(redis, sid(1), "mp3", 1000, 10.0)
    volume_index.add(redis, sid(1), "mp3", 1200, 5.0)  # seen again (a rebuild): counted once, newer use kept
    volume_index.add(redis, sid(2), "wav", 500, 20.0)
    assert volume_index.totals(redis) == volume_index.Totals(files=2, bytes=1700, complete=False)
    assert volume_index.oldest(redis, 0, 10) == [(sid(1), "mp3", 10.0), (sid(2), "wav", 20.0)]
    assert volume_index.remove(redis, sid(1), "mp3") == 1200
    assert volume_index.remove(redis, sid(1), "mp3") == 0
    assert volume_index.totals(redis).files == 1 and volume_index.totals(redis).bytes == 500


def test_a_play_moves_only_indexed_recordings_and_only_forward(redis):
    volume_index.add(redis, sid(1), "mp3", 1000, 100.0)
    volume_index.played(redis, {(sid(1), "mp3"): 50.0, (sid(9), "mp3"): 500.0})
    assert volume_index.oldest(redis, 0, 10) == [(sid(1), "mp3", 100.0)]  # an older play changes nothing
    volume_index.played(redis, {(sid(1), "mp3"): 300.0})
    assert volume_index.oldest(redis, 0, 10) == [(sid(1), "mp3", 300.0)]


def test_a_rebuild_scans_the_volume_once_rerun_safe_and_keeps_newer_plays(settings, redis):
    root = settings.recordings_dir
    for n in range(5):
        put(root, n, age=3600)
    storage.link_call(root, "CA" + "1" * 32, sid(0), "mp3")  # a call link is not a second recording
    volume_index.played(redis, {(sid(0), "mp3"): time.time()})  # not indexed yet: ignored
    first = volume_index.rebuild(root, redis)
    volume_index.played(redis, {(sid(1), "mp3"): time.time()})
    volume_index.rebuild(root, redis)
    totals = volume_index.totals(redis)
    assert first.indexed == 5 and totals == volume_index.Totals(files=5, bytes=5000, complete=True)
    assert volume_index.oldest(redis, 4, 1)[0][0] == sid(1)  # its play survived the second scan


def test_a_rebuild_keeps_to_its_rate(settings, redis, monkeypatch):
    for n in range(30):
        put(settings.recordings_dir, n, age=10)
    slept = []
    monkeypatch.setattr(volume_index.time, "sleep", slept.append)
    volume_index.rebuild(settings.recordings_dir, redis, entries_per_second=100, batch=10)
    assert sum(slept) > 0.2  # 30 files at 100/s: about 0.3 s, less the time the scan itself took


def budgeted(settings, files: int):
    return replace(settings, cache_max_bytes=files * len(MP3))


def test_eviction_removes_the_least_recently_used_down_to_the_low_water_mark(settings, redis):
    root = settings.recordings_dir
    sids = [put(root, n, age=3600 - n) for n in range(10)]  # sids[0] is the oldest
    volume_index.rebuild(root, redis)
    report = evict.evict(budgeted(settings, 8), redis)
    assert report.evicted == 3  # 10 000 bytes down to 90 % of 8 000
    assert [storage.is_cached(root, s, "mp3") for s in sids] == [False] * 3 + [True] * 7
    assert not sidecar.exists(root, sids[0], "mp3")
    assert volume_index.totals(redis).files == 7


def test_eviction_never_removes_recent_pinned_or_downloading_recordings(settings, redis):
    root = settings.recordings_dir
    pinned = put(root, 0, age=7200, pinned=True)
    downloading = put(root, 1, age=7000)
    old = put(root, 2, age=6000)
    recent = put(root, 3, age=10)
    volume_index.rebuild(root, redis)
    assert RecordingLock(redis, downloading, "mp3", ttl=30).acquire()
    report = evict.evict(budgeted(settings, 1), redis)
    assert (report.evicted, report.skipped_pinned) == (1, 1)
    assert [storage.is_cached(root, s, "mp3") for s in (pinned, downloading, old, recent)] == [True, True, False, True]
    assert evict.evict(budgeted(settings, 1), redis).skipped_pinned == 0  # pinned: out of eviction's way for good


def test_a_dry_run_removes_nothing(settings, redis):
    root = settings.recordings_dir
    for n in range(4):
        put(root, n, age=3600)
    volume_index.rebuild(root, redis)
    report = evict.evict(budgeted(settings, 2), redis, dry_run=True)
    assert report.evicted == 3 and len(list(root.glob("*/RE*.mp3"))) == 4
    assert volume_index.totals(redis).files == 4


def test_a_file_removed_by_hand_leaves_the_index_when_eviction_reaches_it(settings, redis):
    root = settings.recordings_dir
    gone = put(root, 0, age=3600)
    put(root, 1, age=3000)
    volume_index.rebuild(root, redis)
    storage.media_path(root, gone, "mp3").unlink()
    evict.evict(budgeted(settings, 1), redis)
    assert volume_index.totals(redis).files == 0


def test_a_pass_reads_one_page_of_the_index_however_large_the_volume(settings, redis, monkeypatch):
    # 20,000 recordings indexed, the oldest a large one: removing it is enough, and only the first page is read.
    pipe = redis.pipeline(transaction=False)
    volume_index.add(redis, sid(0), "mp3", 1_000_000, 1000.0, client=pipe)
    for n in range(1, 20_000):
        volume_index.add(redis, sid(n), "mp3", 10, 1000.0 + n, client=pipe)
    pipe.execute()
    pages = []
    real = volume_index.oldest
    monkeypatch.setattr(volume_index, "oldest", lambda *a: pages.append(a[1:]) or real(*a))
    report = evict.evict(replace(settings, cache_max_bytes=1_000_000), redis)
    assert (report.evicted, report.evicted_bytes) == (1, 1_000_000)
    assert pages == [(0, evict.PAGE)]


@pytest.mark.parametrize("played_sid", ["RE", "CA"])
def test_a_play_ingested_from_nginx_moves_the_recording_in_the_index(settings, redis, played_sid, tmp_path):
    settings = replace(settings, playback_log=tmp_path / "playback.log")
    root = settings.recordings_dir
    recording = put(root, 0, age=3600)
    call = "CA" + "2" * 32
    storage.link_call(root, call, recording, "mp3")
    volume_index.rebuild(root, redis)
    now = time.time()
    asked = recording if played_sid == "RE" else call
    settings.playback_log.write_text(f"{now:.3f} {asked} mp3 206 65536\n")
    assert playlog.ingest(settings, redis).stamped == 1
    assert volume_index.oldest(redis, 0, 1)[0][2] == pytest.approx(now, abs=0.01)


def test_metrics_keys_are_the_index_totals(redis):
    volume_index.add(redis, sid(1), "mp3", 1000, 1.0)
    assert redis.hgetall(keys.INDEX_TOTALS) == {b"files": b"1", b"bytes": b"1000"}
