"""The fault matrix: real processes, a fault injected, the outcome checked on the
volume, on the simulator's request counter and on HTTP answers.

Outcome for every row: eventually cached and intact, one complete upstream
download, never a partial file under a final name, no 5xx but the documented
503 while Redis is down.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis as redis_lib
import requests

from simulator.callbacks import post_callback, recording_status_params
from stack.local import Stack
from stack.ports import free_port, wait_for
from worker import atomic, storage

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

log = logging.getLogger(__name__)

FAST = {"LOCK_TTL_SECONDS": "2", "RETRY_BACKOFF_SECONDS": "0.2", "RETRY_BACKOFF_MAX_SECONDS": "1"}


@pytest.fixture
def start_stack(tmp_path):
    """Start a private stack with extra settings; always stopped afterwards."""
    stacks: list[Stack] = []

    def start(workers: int = 1, concurrency: int = 1, fast: bool = True, **overrides: str) -> Stack:
        stack = Stack(tmp_path / f"stack{len(stacks)}", overrides={**(FAST if fast else {}), **overrides})
        stacks.append(stack)
        return stack.start_all(workers=workers, concurrency=concurrency)

    yield start
    for stack in stacks:
        stack.stop_all()


def create_call(stack: Stack, **knobs) -> dict:
    return stack.sim("POST", "/_sim/calls", json={"size": 65536, **knobs}).json()


def webhook(stack: Stack, call: dict, index: int = 0) -> int:
    params = recording_status_params(call["recordings"][index], stack.sim_url, stack.account_sid, "completed")
    return post_callback(stack.http_url + "/twilio/recording-status", params, stack.auth_token).status_code


def final_path(stack: Stack, sid: str):
    return storage.media_path(stack.recordings, sid, "mp3")


def partials(stack: Stack, sid: str) -> list:
    return list((stack.recordings / ".tmp").glob(atomic.temp_glob(storage.media_path(stack.recordings, sid, "mp3"))))


def retries_logged(stack: Stack, sid: str) -> int:
    """How many failed attempts the worker has logged for ``sid`` (partial already removed)."""
    lines = stack.procs["worker0"].log().splitlines()
    return sum(1 for line in lines if "download.retry" in line and sid in line)


def assert_intact(stack: Stack, call: dict, index: int = 0) -> None:
    recording = call["recordings"][index]
    data = final_path(stack, recording["sid"]).read_bytes()
    assert len(data) == recording["size"]
    assert hashlib.sha256(data).hexdigest() == recording["mp3"]["sha256"]
    assert partials(stack, recording["sid"]) == []


def complete_downloads(stack: Stack, sid: str) -> int:
    return stack.sim("GET", "/_sim/stats").json()["media_complete"].get(sid, {}).get("mp3", 0)


def wait_cached_intact(stack: Stack, call: dict, timeout: float = 40) -> None:
    sid = call["recording_sid"]
    wait_for(final_path(stack, sid).exists, timeout, f"{sid} cached")
    assert_intact(stack, call)


def pool_children(proc) -> list[int]:
    """Pids of a Celery worker's pool processes (children of its main process)."""
    path = f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children"
    with open(path) as handle:
        return [int(pid) for pid in handle.read().split()]


def test_pool_process_killed_mid_download(start_stack):
    stack = start_stack()
    call = create_call(stack, size=2 << 20, throughput=1 << 20)  # a two-second download
    sid = call["recording_sid"]
    assert webhook(stack, call) == 204
    wait_for(lambda: partials(stack, sid), 10, "the download to start")
    for pid in pool_children(stack.procs["worker0"]):
        os.kill(pid, signal.SIGKILL)
    wait_cached_intact(stack, call)
    assert complete_downloads(stack, sid) == 1
    assert stack.media_gets(sid) == 2  # the broken transfer, then the one that completed


def test_whole_worker_killed_mid_download_then_restarted(start_stack):
    stack = start_stack()
    call = create_call(stack, size=2 << 20, throughput=1 << 20)
    sid = call["recording_sid"]
    assert webhook(stack, call) == 204
    wait_for(lambda: partials(stack, sid), 10, "the download to start")
    stack.procs["worker0"].signal(signal.SIGKILL)
    stack.procs["worker0"].popen.wait(5)
    assert not final_path(stack, sid).exists()
    stack.start_worker("worker0-restarted", concurrency=1)
    wait_cached_intact(stack, call, timeout=60)
    assert complete_downloads(stack, sid) == 1


@pytest.mark.parametrize("killed", ["pool_process", "whole_worker"])
def test_a_killed_holders_download_is_under_way_again_within_15_s(start_stack, killed):
    """Default settings (no FAST): the lease, its heartbeat and the recovery sweep do it, not short timeouts."""
    stack = start_stack(fast=False)
    transfer = 4.0  # seconds for the whole file at the simulator's pace
    call = create_call(stack, size=4 << 20, throughput=1 << 20)
    sid = call["recording_sid"]
    assert webhook(stack, call) == 204
    wait_for(lambda: partials(stack, sid), 10, "the download to start")
    worker = stack.procs["worker0"]
    killed_at = time.monotonic()
    if killed == "pool_process":
        for pid in pool_children(worker):
            os.kill(pid, signal.SIGKILL)
    else:
        worker.signal(signal.SIGKILL)
        worker.popen.wait(5)
        stack.start_worker("worker0-restarted", concurrency=1)  # as a supervisor restarts it
    wait_for(lambda: stack.media_gets(sid) >= 2, 20, "a new download")
    under_way = time.monotonic() - killed_at
    wait_cached_intact(stack, call, timeout=30)
    playable = time.monotonic() - killed_at
    log.info("recovery killed=%s under_way_s=%.1f playable_s=%.1f", killed, under_way, playable)
    assert under_way <= 15
    assert playable <= 15 + transfer + 2  # plus the transfer, and the file's verification
    assert complete_downloads(stack, sid) == 1
    assert stack.media_gets(sid) == 2


def test_redis_restarted_mid_download_and_during_a_webhook_burst(start_stack):
    stack = start_stack()
    slow = create_call(stack, size=3 << 20, throughput=1 << 20)
    assert webhook(stack, slow) == 204
    wait_for(lambda: partials(stack, slow["recording_sid"]), 10, "the download to start")
    stack.procs["redis"].stop()

    burst = [create_call(stack) for _ in range(20)]
    with ThreadPoolExecutor(10) as pool:
        while_down = list(pool.map(lambda c: webhook(stack, c), burst))
    # Nothing is accepted that cannot be queued: Twilio is told to retry.
    assert set(while_down) == {503}

    stack.start_redis()  # same port and data folder: the append-only file comes back
    with ThreadPoolExecutor(10) as pool:  # Twilio's retries
        assert set(pool.map(lambda c: webhook(stack, c), burst)) == {204}
    for call in [slow, *burst]:
        wait_cached_intact(stack, call, timeout=60)
        assert complete_downloads(stack, call["recording_sid"]) == 1


@pytest.mark.parametrize(
    ("knobs", "heal"),
    [
        ({"ready_in_ms": 1500}, None),  # 404 until ready, longer than the first retry
        ({"fail_first": 3}, None),  # 500s
        ({"hang_ms": 4000}, {"hang_ms": 0}),  # read timeout (DOWNLOAD_READ_TIMEOUT=1)
        ({"delay_ms": 4000}, {"delay_ms": 0}),  # no response headers in time
        ({"truncate_at": 30000}, {"truncate_at": None}),  # body ends before Content-Length
        ({"garbage": True}, {"garbage": False}),  # bytes that are not audio
    ],
    ids=["not-ready", "http-500", "read-timeout", "slow-headers", "truncated", "not-audio"],
)
def test_upstream_faults(start_stack, knobs, heal):
    stack = start_stack(DOWNLOAD_READ_TIMEOUT="1")
    call = create_call(stack, **knobs)
    sid = call["recording_sid"]
    assert webhook(stack, call) == 204
    if heal:
        wait_for(lambda: stack.media_gets(sid) >= 2 and not final_path(stack, sid).exists(), 20, "a retry")
        stack.sim("PATCH", f"/_sim/recordings/{sid}", json=heal)
    wait_cached_intact(stack, call)
    if not knobs.get("garbage"):  # a garbage body may well have been sent whole before it was refused
        assert complete_downloads(stack, sid) == 1


class _RecordingHandler(BaseHTTPRequestHandler):
    """Serves one body and remembers the headers it was asked with."""

    body = b""
    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_redirect_to_another_host_is_followed_without_credentials(start_stack):
    stack = start_stack()
    call = create_call(stack)
    sid = call["recording_sid"]
    _RecordingHandler.body = requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3", timeout=5).content
    _RecordingHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # "localhost" is another host than the API origin's 127.0.0.1.
        stack.sim("PATCH", f"/_sim/recordings/{sid}", json={"redirect_to": f"http://localhost:{server.server_port}/m"})
        assert webhook(stack, call) == 204
        wait_cached_intact(stack, call)
    finally:
        server.shutdown()
        server.server_close()
    assert len(_RecordingHandler.seen) == 1
    assert "Authorization" not in _RecordingHandler.seen[0]


def test_webhook_recording_url_on_another_host_is_never_contacted(start_stack):
    stack = start_stack()
    call = create_call(stack)
    _RecordingHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        params = recording_status_params(call["recordings"][0], stack.sim_url, stack.account_sid, "completed")
        params["RecordingUrl"] = f"http://127.0.0.1:{server.server_port}/steal"
        url = stack.http_url + "/twilio/recording-status"
        assert post_callback(url, params, stack.auth_token).status_code == 204
        wait_cached_intact(stack, call)
    finally:
        server.shutdown()
        server.server_close()
    assert _RecordingHandler.seen == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_fails_cleanly_and_retries_later(start_stack, tmp_path):
    volume = tmp_path / "small-volume"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(volume)], check=True)
    try:
        # A retry waits 1.5-3 s, so right after an attempt logs its retry none is in flight.
        stack = start_stack(RECORDINGS_DIR=str(volume), RETRY_BACKOFF_SECONDS="3", RETRY_BACKOFF_MAX_SECONDS="3")
        first = create_call(stack, size=512 * 1024)
        assert webhook(stack, first) == 204
        wait_cached_intact(stack, first)

        big = create_call(stack, size=1536 * 1024)  # does not fit next to the first
        assert webhook(stack, big) == 204
        sid = big["recording_sid"]
        for attempt in (1, 2):
            wait_for(lambda n=attempt: retries_logged(stack, sid) >= n, 20, f"retry {attempt} after ENOSPC")
            assert not final_path(stack, sid).exists()
            assert partials(stack, sid) == []
        assert stack.media_gets(sid) >= 2
        # The other recording is still served, signature and all.
        from worker import signing

        url = stack.http_url + signing.signed_url(first["recording_sid"], "mp3", stack.signing_key, 60)
        assert requests.get(url, headers={"Range": "bytes=0-9"}, timeout=5).status_code == 206

        subprocess.run(["mount", "-o", "remount,size=4m", str(volume)], check=True)
        wait_cached_intact(stack, big, timeout=40)
    finally:
        for proc in list(stack.procs.values()) if "stack" in locals() else []:
            proc.stop()
        subprocess.run(["umount", "-l", str(volume)], check=False)


def test_burst_of_1000_recordings_on_two_worker_processes(start_stack):
    stack = start_stack(workers=2, concurrency=1)
    calls = stack.sim("POST", "/_sim/calls", json={"size": 2048, "recordings": 1000}, timeout=120).json()
    recordings = calls["recordings"]
    url = stack.http_url + "/twilio/recording-status"
    session = requests.Session()

    def announce(recording: dict) -> int:
        params = recording_status_params(recording, stack.sim_url, stack.account_sid, "completed")
        return post_callback(url, params, stack.auth_token, session).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(announce, recordings)) == {204}
    wait_for(lambda: all(final_path(stack, rec["sid"]).exists() for rec in recordings), 180, "1000 recordings cached")
    stats = stack.sim("GET", "/_sim/stats").json()
    assert stats["media_complete_total"] == 1000
    assert stats["media_gets_total"] == 1000


def test_burst_of_10000_webhooks_through_nginx(tmp_path):
    """No worker runs: every completed recording must sit in the queue, no 5xx."""
    stack = Stack(tmp_path / "burst")
    try:
        stack.start_redis()
        stack.start_web(workers=4)
        stack.start_nginx()
        url = stack.http_url + "/twilio/recording-status"
        account, token = stack.account_sid, stack.auth_token
        local = threading.local()

        def announce(index: int) -> int:
            session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
            state = "in-progress" if index % 10 == 0 else "completed"
            params = {
                "AccountSid": account,
                "CallSid": f"CA{index:032x}",
                "RecordingSid": f"RE{index:032x}",
                "RecordingStatus": state,
                "RecordingUrl": f"{stack.sim_url}/2010-04-01/Accounts/{account}/Recordings/RE{index:032x}",
            }
            return post_callback(url, params, token, session).status_code

        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(announce, range(10_000)))
        assert statuses.count(204) == 10_000
        r = redis_lib.Redis.from_url(stack.redis_url)
        assert r.llen("recordings") == 9_000
    finally:
        stack.stop_all()


def test_flower_requires_authentication_and_binds_loopback(tmp_path):
    stack = Stack(tmp_path / "flower", overrides={"FLOWER_URL_PREFIX": "flower"})
    try:
        stack.start_redis()
        stack.start_flower()
        stack.start_web()
        stack.start_nginx()
        direct = f"http://127.0.0.1:{stack.flower_port}/flower/"
        assert requests.get(direct, timeout=5).status_code == 401
        user, password = stack.env()["FLOWER_BASIC_AUTH"].split(":", 1)
        assert requests.get(direct, auth=(user, password), timeout=5).status_code == 200
        assert requests.get(direct, auth=(user, "wrong"), timeout=5).status_code == 401
        via_nginx = stack.http_url + "/flower/"
        assert requests.get(via_nginx, timeout=5).status_code == 401
        assert requests.get(via_nginx, auth=(user, password), timeout=5).status_code == 200
        listening = _listening_addresses()
        for port in (stack.flower_port, stack.web_port, stack.redis_port):
            assert listening.get(port) == {"127.0.0.1"}, (port, listening.get(port))
    finally:
        stack.stop_all()


def _listening_addresses() -> dict[int, set[str]]:
    """Local address of every listening IPv4/IPv6 TCP socket, by port (from /proc/net)."""
    found: dict[int, set[str]] = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] != "0A":  # LISTEN
                    continue
                address, port = fields[1].split(":")
                if width == 8:
                    ip = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
                else:
                    ip = "::" if set(address) == {"0"} else address
                found.setdefault(int(port, 16), set()).add(ip)
    return found


def test_secrets_never_reach_the_logs(stack_with_traffic):
    stack = stack_with_traffic
    secrets = [stack.auth_token, stack.signing_key, stack.api_token]
    for proc in stack.procs.values():
        text = proc.log()
        for secret in secrets:
            assert secret not in text, f"{proc.name} logged a secret"
        assert "Authorization" not in text and "Basic " not in text


@pytest.fixture
def stack_with_traffic(start_stack):
    """A stack that handled webhooks, API calls, hits, misses and refusals."""
    stack = start_stack(LOG_FORMAT="json")
    call = create_call(stack)
    assert webhook(stack, call) == 204
    wait_cached_intact(stack, call)
    from worker import signing

    headers = {"Authorization": f"Bearer {stack.api_token}"}
    assert requests.get(f"{stack.http_url}/api/recordings/{call['recording_sid']}", headers=headers, timeout=5).ok
    url = stack.http_url + signing.signed_url(call["recording_sid"], "mp3", stack.signing_key, 60)
    assert requests.get(url, timeout=5).status_code == 200
    assert requests.get(url.replace("sig=", "sig=x"), timeout=5).status_code == 403
    bad = requests.post(stack.http_url + "/twilio/recording-status", data={"a": "b"}, timeout=5)
    assert bad.status_code == 403
    return stack
