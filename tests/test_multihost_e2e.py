"""Two hosts, A and B, sharing one Redis and one Ceph RADOS Gateway, the simulator playing Twilio.

Each host runs its own nginx (with its own edge cache), gunicorn and Celery
worker from the Procfile. Whatever host Twilio or a player reaches, each
recording is fetched from Twilio once and stored once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from simulator.callbacks import post_callback, recording_status_params
from stack.local import Stack
from stack.ports import wait_for
from stack.rgw import new_bucket
from worker import signing
from worker.objectstore import ObjectStore

log = logging.getLogger(__name__)

pytestmark = [pytest.mark.e2e, pytest.mark.s3, pytest.mark.multihost]

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def hosts(rgw, njs, tmp_path_factory):
    """Host A (with the shared Redis and simulator) and host B, both in bucket mode on one bucket."""
    overrides, bucket = new_bucket(rgw)
    store = ObjectStore(bucket)
    base = tmp_path_factory.mktemp("hosts")
    a = Stack(base / "a", overrides={**overrides, "EDGE_CACHE_DIR": str(base / "a" / "edge-cache")})
    b = a.sibling(base / "b")
    try:
        a.start_all(workers=1, concurrency=2)
        b.start_worker("worker0", concurrency=2)
        b.start_web()
        b.start_nginx()
        yield a, b, store
    finally:
        b.stop_all()
        a.stop_all()


def signed(host: Stack, sid: str) -> str:
    return host.http_url + signing.signed_url(sid, "mp3", host.signing_key, 600)


def create_call(host: Stack, size: int, **knobs) -> dict:
    return host.sim("POST", "/_sim/calls", json={"size": size, **knobs}).json()


def webhook(host: Stack, call: dict) -> int:
    params = recording_status_params(call["recordings"][0], host.sim_url, host.account_sid, "completed")
    return post_callback(host.http_url + "/twilio/recording-status", params, host.auth_token).status_code


def media(host: Stack, sid: str) -> bytes:
    return requests.get(f"{host.sim_url}/_sim/media/{sid}.mp3", timeout=10).content


def worker_logs(*hosts: Stack) -> str:
    return "".join(proc.log() for host in hosts for name, proc in host.procs.items() if name.startswith("worker"))


def uploads(sid: str, *hosts: Stack) -> int:
    return sum(1 for line in worker_logs(*hosts).splitlines() if "event=upload.done" in line and sid in line)


def origin_gets(host: Stack, sid: str) -> int:
    log = host.runtime / "bucket-origin.log"
    return sum(1 for line in log.read_text().splitlines() if f"/{sid}.mp3 " in line) if log.exists() else 0


def play(host: Stack, sid: str, byte_range: str | None = None, timeout: float = 60) -> requests.Response:
    """What a player does: ask, and on 202 come back after Retry-After, until it plays."""
    headers = {"Range": byte_range} if byte_range else {}
    return wait_for(
        lambda: (r := requests.get(signed(host, sid), headers=headers, timeout=10)).status_code in (200, 206) and r,
        timeout,
        f"{sid} plays on {host.http_url}",
        interval=0.2,
    )


def test_webhooks_to_both_hosts_fetch_and_store_each_recording_once(hosts):
    a, b, store = hosts
    calls = [create_call(a, 65536) for _ in range(50)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda pair: webhook(*pair), [(host, c) for c in calls for host in (a, b)]))
    assert statuses == [204] * 100
    sids = [c["recording_sid"] for c in calls]
    wait_for(lambda: all(store.head(sid, "mp3") for sid in sids), 90, "50 objects in the bucket")
    assert sum(a.media_gets(sid) for sid in sids) == 50
    assert sum(uploads(sid, a, b) for sid in sids) == 50  # one PUT each (below the multipart threshold)


def test_a_range_storm_over_both_hosts_gets_the_right_bytes_from_one_twilio_get_each(hosts):
    a, b, _store = hosts
    calls = [create_call(a, 300_000) for _ in range(20)]
    bodies = {c["recording_sid"]: media(a, c["recording_sid"]) for c in calls}
    players = [(host, c["recording_sid"]) for _ in range(5) for c in calls for host in (a, b)]

    def listen(player) -> bool:
        host, sid = player
        response = play(host, sid, "bytes=1000-65535", timeout=90)
        return response.status_code == 206 and response.content == bodies[sid][1000:65536]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(listen, players))
    assert len(results) == 200 and all(results)
    assert [a.media_gets(sid) for sid in bodies] == [1] * 20


def test_a_second_play_is_an_edge_hit_and_the_other_host_fetches_each_slice_once(hosts):
    a, b, _store = hosts
    call = create_call(a, 2 * MIB + 1000)  # three 1 MiB slices
    sid = call["recording_sid"]
    assert webhook(a, call) == 204
    body = media(a, sid)
    assert play(a, sid).content == body
    a_gets = origin_gets(a, sid)
    again = requests.get(signed(a, sid), headers={"Range": "bytes=0-99"}, timeout=10)
    assert again.headers["X-Edge-Cache"] == "HIT" and origin_gets(a, sid) == a_gets  # no store GET
    with ThreadPoolExecutor(8) as pool:  # eight players at once on host B, which has nothing yet
        plays = list(pool.map(lambda _: requests.get(signed(b, sid), timeout=30), range(8)))
    assert all(p.status_code == 200 and p.content == body for p in plays)
    assert origin_gets(b, sid) <= 3  # at most one bucket GET per slice (proxy_cache_lock)


def test_host_a_worker_killed_mid_download_leaves_host_b_to_finish(hosts):
    a, b, store = hosts
    b.procs.pop("worker0").stop()  # so that host A's worker takes the task
    call = create_call(a, 3 * MIB, throughput=MIB)
    sid = call["recording_sid"]
    assert webhook(a, call) == 204
    # This recording's own download.start: a task only received (not started) has no holder to recover.
    started = re.compile(rf"event=download\.start\b.*\brecording_sid={sid}\b")
    wait_for(lambda: started.search(worker_logs(a)), 15, "A downloading")
    a.procs["worker0"].signal(signal.SIGKILL)
    killed = time.monotonic()
    a.procs["worker0"].popen.wait(5)
    assert store.head(sid, "mp3") is None  # nothing partial is visible
    b.start_worker("worker0", concurrency=2)
    body = play(b, sid, timeout=90).content
    # The figure for a reader (pytest -m multihost -o log_cli=true --log-cli-level=INFO).
    log.info("multihost.recovered after=worker_killed seconds=%.1f", time.monotonic() - killed)
    assert hashlib.sha256(body).digest() == hashlib.sha256(media(a, sid)).digest()
    assert uploads(sid, a, b) == 1
    a.start_worker("worker0-restarted", concurrency=2)  # host A back for the next test


def test_host_a_stopped_whole_leaves_host_b_playing_everything(hosts):
    a, b, store = hosts
    kept = [create_call(a, 65536) for _ in range(3)]
    for call in kept:
        assert webhook(a, call) == 204
    wait_for(lambda: all(store.head(c["recording_sid"], "mp3") for c in kept), 60, "kept")
    for name in [name for name in a.procs if name not in ("redis", "simulator")]:  # the shared parts stay
        a.procs.pop(name).stop()
    stopped = time.monotonic()
    new = create_call(a, 65536)
    assert webhook(b, new) == 204
    for call in [*kept, new]:
        assert play(b, call["recording_sid"]).content == media(a, call["recording_sid"])
    log.info("multihost.recovered after=host_stopped seconds=%.1f", time.monotonic() - stopped)
