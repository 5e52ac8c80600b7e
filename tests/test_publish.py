"""The one-round-trip publish against Celery's own send_task, on a real redis-server."""

from __future__ import annotations

import base64
import json
import os
import shutil
from types import SimpleNamespace

import pytest
import redis

from stack.ports import free_port, wait_for
from tests.support import make_settings, spawn_redis_server
from worker import keys, queue
from worker.celery_app import create_celery
from worker.publish import FastPublisher

pytestmark = pytest.mark.real

VOLATILE_HEADERS = {"id", "root_id"}
VOLATILE_PROPERTIES = {"correlation_id", "delivery_tag"}


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("recordings.fetch", ["RE" + "0" * 32, "mp3", "CA" + "1" * 32, None]),
        ("recordings.fetch", ["RE" + "0" * 32, "mp3", None, "2026-11-28T10:00:00+00:00"]),
        # Text JSON and repr must escape (the template fills its holes by hand).
        ("recordings.fetch_call", ['CA"\\@@body@@é\n', "wav"]),
    ],
)
def test_fast_publish_matches_kombus_envelope(tmp_path, real_redis, real_redis_server, name, args):
    celery = create_celery(make_settings(tmp_path, REDIS_URL=real_redis_server))
    try:
        celery.send_task(name, args=args, argsrepr=repr(args), kwargsrepr="{}")
        kombu = json.loads(real_redis.rpop("recordings"))
        publisher = FastPublisher(celery, real_redis)
        publisher.message(name, ["RE" + "9" * 32, "mp3"])  # the template is built once, then reused
        assert publisher.claim_and_push("RE" + "0" * 32, "mp3", name, args, ("completed", "CA" + "1" * 32))
        ours = json.loads(real_redis.rpop("recordings"))
    finally:
        celery.close()
    assert set(ours) == set(kombu)
    assert base64.b64decode(ours["body"]) == base64.b64decode(kombu["body"])
    for field in ("content-encoding", "content-type"):
        assert ours[field] == kombu[field]

    def strip(data: dict, volatile: set) -> dict:
        return {k: v for k, v in data.items() if k not in volatile}

    assert strip(ours["headers"], VOLATILE_HEADERS) == strip(kombu["headers"], VOLATILE_HEADERS)
    assert strip(ours["properties"], VOLATILE_PROPERTIES) == strip(kombu["properties"], VOLATILE_PROPERTIES)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]


def test_claim_and_push_enqueues_once_and_remembers_every_callback(tmp_path, real_redis, real_redis_server):
    celery = create_celery(make_settings(tmp_path, REDIS_URL=real_redis_server))
    publisher = FastPublisher(celery, real_redis)
    sid, call = "RE" + "2" * 32, "CA" + "2" * 32
    try:
        pushed = [
            publisher.claim_and_push(sid, "mp3", "recordings.fetch", [sid, "mp3", call, None], ("completed", call))
            for _ in range(5)
        ]
    finally:
        celery.close()
    assert pushed == [True, False, False, False, False]
    assert real_redis.llen("recordings") == 1
    assert json.loads(real_redis.get(keys.webhook(sid)))["status"] == "completed"
    assert 0 < real_redis.ttl(keys.queued(sid, "mp3")) <= 120


def _enqueue_all(publisher: FastPublisher, sids: list[str]) -> set[str]:
    return {sid for sid in sids if queue.enqueue_fetch(publisher, sid, "mp3", "test")}


def test_a_forked_child_publishes_on_its_own_connection(tmp_path, real_redis, real_redis_server):
    """Parent and child enqueue at once after a fork: each gets its own replies and names itself as origin."""
    celery = create_celery(make_settings(tmp_path, REDIS_URL=real_redis_server))
    publisher = FastPublisher(celery, redis.Redis.from_url(real_redis_server))
    sids = [f"RE{i:032x}" for i in range(900)]
    mine, theirs, contended = sids[:300], sids[300:600], sids[600:]  # both race for the contended ones
    report = tmp_path / "child.json"
    try:
        assert queue.enqueue_fetch(publisher, "RE" + "f" * 32, "mp3", "test")  # the parent's connection is open
        child = os.fork()
        if child == 0:  # the child reports through a file and its exit code only
            try:
                report.write_text(json.dumps(sorted(_enqueue_all(publisher, theirs + contended))))
                os._exit(0)
            except BaseException:
                os._exit(1)
        pushed_here = _enqueue_all(publisher, mine + contended)
        _, status = os.waitpid(child, 0)
    finally:
        celery.close()
    assert os.waitstatus_to_exitcode(status) == 0
    pushed_there = set(json.loads(report.read_text()))
    origins: dict[str, list[str]] = {}
    for raw in real_redis.lrange("recordings", 0, -1):
        message = json.loads(raw)
        origins.setdefault(message["headers"]["argsrepr"][2:36], []).append(message["headers"]["origin"])
    assert all(len(names) == 1 for names in origins.values())  # each recording queued once
    assert set(origins) == set(sids) | {"RE" + "f" * 32}
    parent = origins["RE" + "f" * 32][0]  # queued before the fork
    assert {sid for sid in sids if origins[sid] == [parent]} == pushed_here
    assert {sid for sid in sids if origins[sid] != [parent]} == pushed_there
    assert set(mine) <= pushed_here and set(theirs) <= pushed_there


@pytest.fixture
def restartable_redis(tmp_path):
    """A redis-server of this test's own, on a free port, that the test may restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    procs = []

    def start() -> None:
        procs.append(spawn_redis_server(binary, port, tmp_path))

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(10)

    start()
    try:
        yield SimpleNamespace(url=f"redis://127.0.0.1:{port}/0", start=start, stop=stop)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def test_enqueue_survives_a_redis_restart_and_an_idle_close(tmp_path, restartable_redis):
    """The publisher's held connection is reconnected, not failed, once Redis closed it."""
    celery = create_celery(make_settings(tmp_path, REDIS_URL=restartable_redis.url))
    r = redis.Redis.from_url(restartable_redis.url, socket_connect_timeout=1, socket_timeout=2)
    publisher = FastPublisher(celery, r)
    try:
        assert queue.enqueue_fetch(publisher, "RE" + "1" * 32, "mp3", "test")
        restartable_redis.stop()  # nothing is sent while it is down
        restartable_redis.start()
        assert queue.enqueue_fetch(publisher, "RE" + "2" * 32, "mp3", "test")

        r.config_set("timeout", 1)  # the server drops idle clients: the publisher's connection goes
        wait_for(lambda: len(r.client_list()) == 1, 10, "only this polling client left connected")
        assert queue.enqueue_fetch(publisher, "RE" + "3" * 32, "mp3", "test")
    finally:
        celery.close()
    assert r.llen("recordings") == 2  # the one before the restart died with the server (no persistence)
