"""The one-round-trip publish against Celery's own send_task, on a real redis-server."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import make_settings
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
    assert json.loads(real_redis.get(f"rc:webhook:{sid}"))["status"] == "completed"
    assert 0 < real_redis.ttl(f"rc:queued:{sid}.mp3") <= 120
