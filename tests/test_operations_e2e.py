"""Operations end to end: metrics moving, eviction, backfill, delete-after-verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families

from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from stack.procfile import ROOT
from worker import keys, sidecar, signing, storage

pytestmark = pytest.mark.e2e


def cli(stack: Stack, *args: str) -> dict:
    """Run ``python -m worker …`` with the stack's settings; its JSON summary."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args], cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def scrape(stack: Stack) -> dict[str, float]:
    text = requests.get(stack.http_url + "/metrics", timeout=5).text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "pid")
            key = f"{sample.name}{{{labels}}}" if labels else sample.name
            values[key] = values.get(key, 0) + sample.value
    return values


def play(stack: Stack, sid: str, headers: dict | None = None) -> requests.Response:
    url = stack.http_url + signing.signed_url(sid, "mp3", stack.signing_key, 600)
    return requests.get(url, headers=headers or {"Range": "bytes=0-99"}, timeout=5)


def cache_call(stack: Stack, size: int = 65536) -> dict:
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=size)
    wait_for(lambda: storage.is_cached(stack.recordings, call["recording_sid"], "mp3"), 30, "cached")
    return call


@pytest.fixture
def start_stack(tmp_path):
    stacks: list[Stack] = []

    def start(**overrides: str) -> Stack:
        stack = Stack(tmp_path / f"stack{len(stacks)}", overrides=overrides)
        stacks.append(stack)
        return stack.start_all(workers=1, concurrency=2)

    yield start
    for stack in stacks:
        stack.stop_all()


def test_metrics_move_with_a_download_a_hit_and_a_miss(stack):
    before = scrape(stack)
    call = cache_call(stack, size=100_000)
    assert play(stack, call["recording_sid"]).status_code == 206  # a hit, by nginx alone
    cold = stack.sim("POST", "/_sim/calls", json={"size": 4096}).json()
    assert play(stack, cold["recording_sid"]).status_code == 202  # a miss

    def hits_counted():
        cli(stack, "ingest-playlog")
        return scrape(stack).get("recording_cache_playback_hits_total", 0) > before.get(
            "recording_cache_playback_hits_total", 0
        )

    wait_for(hits_counted, 15, "nginx's hit to be counted")  # nginx flushes its log every 2 s
    after = scrape(stack)

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert delta("recording_cache_webhooks_total{kind=recording,outcome=completed}") == 1
    assert delta("recording_cache_downloads_total{outcome=succeeded}") >= 1
    assert delta("recording_cache_downloaded_bytes_total") >= 100_000
    assert delta("recording_cache_playback_misses_total") == 1
    assert delta("recording_cache_playback_hits_total") >= 1
    assert delta("recording_cache_playback_hit_bytes_total") >= 100
    assert "recording_cache_download_seconds_count" in after
    assert "recording_cache_queue_depth" in after


def _age(stack: Stack, sid: str, seconds: float) -> None:
    path = storage.media_path(stack.recordings, sid, "mp3")
    past = time.time() - seconds
    os.utime(path, (past, past))


def _reindex(stack: Stack) -> None:
    """As after a Redis that lost the index: scan the volume (and its aged files) back in."""
    redis_lib.Redis.from_url(stack.redis_url).delete(
        keys.INDEX_BY_USE, keys.INDEX_SIZES, keys.INDEX_TOTALS, keys.INDEX_COMPLETE
    )
    assert cli(stack, "index-volume")["indexed"] >= 1


def test_eviction_keeps_the_budget_and_refetches_on_the_next_play(start_stack):
    size = 100 * 1024
    stack = start_stack(CACHE_MAX_BYTES=str(3 * size))
    calls = [cache_call(stack, size) for _ in range(4)]
    sids = [c["recording_sid"] for c in calls]
    for index, sid in enumerate(sids):
        _age(stack, sid, 3600 - index)  # all old; the first is the oldest
    _reindex(stack)
    for sid in sids[2:]:
        assert play(stack, sid).status_code == 206  # played just now: never evicted

    # The second one's Twilio copy is gone: pinned, must survive although old.
    sidecar.write(stack.recordings, sidecar.read(stack.recordings, sids[1], "mp3").marked(pinned=True))

    # nginx flushes its playback log every 2 s; the CLI's or the beat's ingestion moves them in the index.
    wait_for(lambda: cli(stack, "ingest-playlog")["hits"] >= 0 and _played(stack, sids[2:]), 15, "plays ingested")
    report = cli(stack, "evict")
    assert report["evicted"] == 1 and report["skipped_pinned"] == 1
    assert not storage.is_cached(stack.recordings, sids[0], "mp3")
    assert all(storage.is_cached(stack.recordings, sid, "mp3") for sid in sids[1:])

    assert play(stack, sids[0]).status_code == 202  # evicted: fetched again
    wait_for(lambda: play(stack, sids[0]).status_code == 206, 30, "re-fetched")
    assert stack.media_gets(sids[0]) == 2


def _played(stack: Stack, sids: list[str]) -> bool:
    """True once the plays reached the volume's index (last use within the minute)."""
    index = redis_lib.Redis.from_url(stack.redis_url)
    now = time.time()
    return all((index.zscore(keys.INDEX_BY_USE, f"{sid}.mp3") or 0) > now - 60 for sid in sids)


def test_eviction_is_off_without_a_budget(stack):
    report = cli(stack, "evict")
    assert report["budget"] == 0 and report["evicted"] == 0 and report["files"] >= 0


def test_backfill_pages_through_twilio_and_is_safe_to_rerun(start_stack):
    stack = start_stack()
    old = stack.sim(
        "POST", "/_sim/calls", json={"size": 2048, "recordings": 25, "date_created": "2026-03-01T10:00:00Z"}
    ).json()
    stack.sim("POST", "/_sim/calls", json={"size": 2048, "recordings": 3, "date_created": "2025-12-01T10:00:00Z"})
    dry = cli(stack, "backfill", "--since", "2026-02-01", "--dry-run", "--page-size", "10")
    assert (dry["found"], dry["enqueued"]) == (25, 25)
    assert stack.sim("GET", "/_sim/stats").json()["media_gets_total"] == 0

    first = cli(stack, "backfill", "--since", "2026-02-01", "--page-size", "10")
    assert (first["found"], first["enqueued"], first["already_cached"]) == (25, 25, 0)
    sids = old["recording_sids"]
    wait_for(lambda: all(storage.is_cached(stack.recordings, sid, "mp3") for sid in sids), 60, "backfilled")

    again = cli(stack, "backfill", "--since", "2026-02-01", "--page-size", "10")
    assert (again["found"], again["enqueued"], again["already_cached"]) == (25, 0, 25)
    assert all(stack.media_gets(sid) == 1 for sid in sids)
    one_call = cli(stack, "backfill", "--since", "2025-01-01", "--call", old["call_sid"], "--dry-run")
    assert one_call["found"] == 25


def test_backfill_rejects_bad_arguments_in_one_line(stack):
    done = subprocess.run(
        [sys.executable, "-m", "worker", "backfill", "--since", "yesterday"],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "expected YYYY-MM-DD" in done.stderr and "Traceback" not in done.stderr


def test_delete_after_verify_refuses_a_changed_file_and_pins_deleted_ones(start_stack):
    stack = start_stack(DELETE_FROM_TWILIO_AFTER_DAYS="0", CACHE_MAX_BYTES="1")
    good, changed = cache_call(stack), cache_call(stack)
    path = storage.media_path(stack.recordings, changed["recording_sid"], "mp3")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(data))

    dry = cli(stack, "delete-from-twilio", "--dry-run")
    assert (dry["would_delete"], dry["refused"], dry["deleted"]) == (1, 1, 0)

    report = cli(stack, "delete-from-twilio")
    assert (report["deleted"], report["refused"]) == (1, 1)
    resource = f"{stack.sim_url}/2010-04-01/Accounts/{stack.account_sid}/Recordings"
    auth = (stack.account_sid, stack.auth_token)
    assert requests.get(f"{resource}/{good['recording_sid']}.json", auth=auth, timeout=5).status_code == 404
    assert requests.get(f"{resource}/{changed['recording_sid']}.json", auth=auth, timeout=5).status_code == 200
    facts = sidecar.read(stack.recordings, good["recording_sid"], "mp3")
    assert facts.pinned and facts.twilio_deleted_at

    for call in (good, changed):
        _age(stack, call["recording_sid"], 3600)
    _reindex(stack)
    evicted = cli(stack, "evict")  # a 1-byte budget: everything unpinned goes
    assert evicted["skipped_pinned"] == 1
    assert storage.is_cached(stack.recordings, good["recording_sid"], "mp3")
    assert not storage.is_cached(stack.recordings, changed["recording_sid"], "mp3")
    assert cli(stack, "delete-from-twilio")["deleted"] == 0  # nothing twice


def test_reconcile_fetches_what_webhooks_lost_and_cleans_stale_temp_files(start_stack):
    stack = start_stack()
    # Twilio has it, but its webhook never arrived.
    unannounced = stack.sim("POST", "/_sim/calls", json={"size": 4096}).json()
    # The webhook was accepted, but its queued task was lost (e.g. a Redis that kept nothing).
    lost = stack.sim("POST", "/_sim/calls", json={"size": 4096}).json()
    r = redis_lib.Redis.from_url(stack.redis_url)
    r.set(keys.webhook(lost["recording_sid"]), json.dumps({"status": "completed", "call_sid": lost["call_sid"]}))
    stale = stack.recordings / ".tmp" / f".{lost['recording_sid']}.mp3.dead.part"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"partial")
    os.utime(stale, (1, 1))

    report = cli(stack, "reconcile")
    assert report["enqueued"] == 2 and report["temp_removed"] == 1 and report["remembered"] == 1
    for call in (unannounced, lost):
        wait_for(lambda c=call: storage.is_cached(stack.recordings, c["recording_sid"], "mp3"), 30, "reconciled")
        assert stack.media_gets(call["recording_sid"]) == 1
    again = cli(stack, "reconcile")
    assert again["enqueued"] == 0 and again["already_cached"] >= 2
