"""Webhook → Celery → verified file, through real redis-server, Celery workers,
gunicorn, nginx and the Twilio simulator."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis as redis_lib
import requests

from simulator.callbacks import post_callback, recording_status_params
from stack.ports import wait_for
from worker import atomic, keys, sidecar, storage
from worker.celery_app import create_celery
from worker.config import load_settings

pytestmark = pytest.mark.e2e


def create_call(stack, **knobs) -> dict:
    """A call with one recording on the simulator, no callbacks sent yet."""
    return stack.sim("POST", "/_sim/calls", json={"size": 65536, **knobs}).json()


def completed_webhook(stack, call: dict) -> requests.Response:
    """Twilio's signed recording-status ``completed`` callback, through nginx."""
    params = recording_status_params(call["recordings"][0], stack.sim_url, stack.account_sid, "completed")
    return post_callback(stack.http_url + "/twilio/recording-status", params, stack.auth_token)


def wait_cached(stack, sid: str, fmt: str = "mp3", timeout: float = 30) -> bytes:
    path = storage.media_path(stack.recordings, sid, fmt)
    wait_for(path.exists, timeout, f"{sid}.{fmt} on the volume")
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_signed_webhook_ends_as_verified_file(stack):
    from simulator.callbacks import place_call

    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=1 << 20)
    assert set(call["callback_statuses"]) == {204}
    sid = call["recording_sid"]
    data = wait_cached(stack, sid)
    assert len(data) == 1 << 20
    assert sha256(data) == call["expected"]["sha256"]
    facts = sidecar.read(stack.recordings, sid, "mp3")
    assert facts.call_sid == call["call_sid"]
    assert facts.sha256 == call["expected"]["sha256"]
    assert storage.resolve_link(stack.recordings, call["call_sid"], "mp3") == sid
    assert stack.media_gets(sid) == 1
    assert not list(
        (stack.recordings / ".tmp").glob(atomic.temp_glob(storage.media_path(stack.recordings, sid, "mp3")))
    )
    worker_logs = stack.procs["worker0"].log() + stack.procs["worker1"].log()
    done = [line for line in worker_logs.splitlines() if "event=download.done" in line and sid in line]
    assert len(done) == 1 and f"bytes={1 << 20}" in done[0]


def test_twenty_duplicate_webhooks_make_one_media_get(stack):
    call = create_call(stack, throughput=2 << 20)  # slow enough to overlap
    sid = call["recording_sid"]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: completed_webhook(stack, call).status_code, range(20)))
    assert answers == [204] * 20
    wait_cached(stack, sid)
    assert stack.media_gets(sid) == 1


def test_twenty_duplicate_tasks_on_two_workers_make_one_media_get(stack):
    """Bypasses the enqueue marker: the Redis lock alone must hold across processes."""
    call = create_call(stack, size=1 << 20, throughput=4 << 20)
    sid = call["recording_sid"]
    celery = create_celery(load_settings(stack.env()))
    try:
        for _ in range(20):
            celery.send_task("recordings.fetch", args=[sid, "mp3", call["call_sid"], None])
        wait_cached(stack, sid)
        # Let every duplicate task run out, then count.
        r = redis_lib.Redis.from_url(stack.redis_url)
        wait_for(lambda: r.llen("recordings") == 0, 20, "queue drained")
    finally:
        celery.close()
    time.sleep(0.5)  # tasks just taken off the queue finish within milliseconds
    assert stack.media_gets(sid) == 1
    logs = "".join(stack.procs[name].log() for name in ("worker0", "worker1"))
    done = [line for line in logs.splitlines() if "event=download.done" in line and f"recording_sid={sid}" in line]
    assert len(done) == 1


def test_media_404_twice_then_fetched(stack):
    call = create_call(stack, ready_after=2)
    sid = call["recording_sid"]
    assert completed_webhook(stack, call).status_code == 204
    data = wait_cached(stack, sid)
    assert sha256(data) == call["recordings"][0]["mp3"]["sha256"]
    assert stack.media_gets(sid) == 3  # two 404s, then the media


def test_truncated_body_never_appears_under_final_name(stack):
    size = 256 * 1024
    call = create_call(stack, size=size, truncate_at=size // 2)
    sid = call["recording_sid"]
    final = storage.media_path(stack.recordings, sid, "mp3")
    assert completed_webhook(stack, call).status_code == 204

    def retried_and_still_absent():
        assert not final.exists(), "a truncated body was renamed into place"
        return stack.media_gets(sid) >= 2

    wait_for(retried_and_still_absent, 20, "a retry after the truncated transfer")
    stack.sim("PATCH", f"/_sim/recordings/{sid}", json={"truncate_at": None})
    data = wait_cached(stack, sid)
    assert len(data) == size
    assert sha256(data) == call["recordings"][0]["mp3"]["sha256"]
    assert not list(
        (stack.recordings / ".tmp").glob(atomic.temp_glob(storage.media_path(stack.recordings, sid, "mp3")))
    )


# "\xe9…": a byte above 0x7F, as a raw client may send; it once made hmac.compare_digest raise (500).
@pytest.mark.parametrize(
    "signature", [None, "forged", "\xe9" * 28, "wrong-token"], ids=["none", "forged", "latin1", "wrong-token"]
)
def test_unsigned_or_wrongly_signed_webhook_is_refused_and_enqueues_nothing(stack, signature):
    call = create_call(stack)
    sid = call["recording_sid"]
    params = recording_status_params(call["recordings"][0], stack.sim_url, stack.account_sid, "completed")
    url = stack.http_url + "/twilio/recording-status"
    if signature == "wrong-token":
        response = post_callback(url, params, "0" * 32)
    else:
        headers = {"X-Twilio-Signature": signature} if signature else {}
        response = requests.post(url, data=params, headers=headers, timeout=5)
    assert response.status_code == 403
    r = redis_lib.Redis.from_url(stack.redis_url)
    assert not r.exists(keys.queued(sid, "mp3"))
    assert r.get(keys.webhook(sid)) is None
    queued = [json.loads(m) for m in r.lrange("recordings", 0, -1)]
    assert not any(sid in json.dumps(message) for message in queued)
    assert stack.media_gets(sid) == 0
