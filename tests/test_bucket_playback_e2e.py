"""Bucket mode end to end: webhook → worker → Ceph RGW, playback through nginx's edge cache.

Real redis-server, Celery worker, gunicorn, nginx (secure_link, slice,
proxy_cache) and the Twilio simulator, with STORAGE_URL on a real RADOS Gateway.
"""

from __future__ import annotations

import secrets
import socket
import threading

import pytest
import requests

from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from stack.rgw import new_bucket
from tests.support import relay
from worker import signing, storage
from worker.bucket_settings import BucketSettings
from worker.objectstore import ObjectStore

pytestmark = [pytest.mark.e2e, pytest.mark.s3]

SIZE = 3 * 1024 * 1024 + 12345  # four 1 MiB slices, the last one short


@pytest.fixture(scope="module")
def bucket_stack(rgw, njs, tmp_path_factory):
    """One host in bucket mode: its own edge cache, the shared gateway."""
    overrides, bucket = new_bucket(rgw)
    base = tmp_path_factory.mktemp("bucket-stack")
    overrides["EDGE_CACHE_DIR"] = str(base / "edge-cache")
    store = ObjectStore(bucket)
    with Stack(base, overrides=overrides) as stack:
        stack.start_all(workers=1, concurrency=2)
        stack.store = store
        yield stack


def signed(stack, sid: str, fmt: str = "mp3") -> str:
    return stack.http_url + signing.signed_url(sid, fmt, stack.signing_key, 600)


@pytest.fixture(scope="module")
def stored(bucket_stack):
    """A recording announced by Twilio's callbacks and kept in the bucket."""
    call = place_call(
        bucket_stack.sim_url, bucket_stack.http_url, bucket_stack.account_sid, bucket_stack.auth_token, size=SIZE
    )
    sid = call["recording_sid"]
    wait_for(lambda: bucket_stack.store.head(sid, "mp3"), 60, "the object in the bucket")
    body = requests.get(f"{bucket_stack.sim_url}/_sim/media/{sid}.mp3", timeout=10).content
    return {"sid": sid, "call": call, "body": body}


def test_the_recording_is_in_the_bucket_not_on_the_volume(bucket_stack, stored):
    assert bucket_stack.store.head(stored["sid"], "mp3")["bytes"] == SIZE
    assert not storage.media_path(bucket_stack.recordings, stored["sid"], "mp3").exists()
    assert bucket_stack.media_gets(stored["sid"]) == 1


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-1", 0, 1), ("bytes=1048570-1048580", 1048570, 1048580), ("bytes=-500", SIZE - 500, SIZE - 1)],
)
def test_range_requests_play_from_the_edge_with_the_right_bytes(bucket_stack, stored, range_header, start, end):
    response = requests.get(signed(bucket_stack, stored["sid"]), headers={"Range": range_header}, timeout=10)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert response.content == stored["body"][start : end + 1]


def test_a_whole_play_is_the_object_and_a_second_play_is_an_edge_hit(bucket_stack, stored):
    first = requests.get(signed(bucket_stack, stored["sid"]), timeout=10)
    assert first.status_code == 200 and first.content == stored["body"]
    again = requests.get(signed(bucket_stack, stored["sid"]), headers={"Range": "bytes=0-99"}, timeout=10)
    assert again.status_code == 206 and again.headers["X-Edge-Cache"] == "HIT"

    # The object's facts (call, account, sha256) and the store's own headers stay behind the edge.
    for answer in (first, again):
        assert [name for name in answer.headers if name.lower().startswith(("x-amz", "x-rgw"))] == []


@pytest.mark.parametrize("query", ["", "?expires=9999999999&sig=forged", "?expires=1&sig=x"])
def test_no_edge_byte_without_a_valid_signature(bucket_stack, stored, query):
    requests.get(signed(bucket_stack, stored["sid"]), timeout=10)  # the edge holds it now
    response = requests.get(f"{bucket_stack.http_url}/recordings/{stored['sid']}.mp3{query}", timeout=10)
    assert response.status_code == 403
    assert stored["body"][:64] not in response.content


def test_a_call_sid_plays_its_recording_through_the_call_index(bucket_stack, stored):
    response = requests.get(
        signed(bucket_stack, stored["call"]["call_sid"]), headers={"Range": "bytes=0-9"}, timeout=10
    )
    assert response.history and response.history[0].status_code == 302
    assert response.status_code == 206 and response.content == stored["body"][:10]


def test_a_conference_sid_plays_its_recording_through_the_index(bucket_stack):
    call = place_call(
        bucket_stack.sim_url, bucket_stack.http_url, bucket_stack.account_sid, bucket_stack.auth_token, conference=True
    )
    sid, conference = call["recording_sid"], call["conference_sid"]
    wait_for(lambda: bucket_stack.store.resolve_call(conference, "mp3") == sid, 60, "the conference's index entry")
    response = requests.get(signed(bucket_stack, conference), headers={"Range": "bytes=0-9"}, timeout=10)
    assert response.history and response.history[0].status_code == 302
    body = requests.get(f"{bucket_stack.sim_url}/_sim/media/{sid}.mp3", timeout=10).content
    assert response.status_code == 206 and response.content == body[:10]


def test_a_recording_not_in_the_bucket_is_fetched_from_twilio_once(bucket_stack):
    call = bucket_stack.sim("POST", "/_sim/calls", json={"size": 65536}).json()
    sid = call["recording_sid"]
    first = requests.get(signed(bucket_stack, sid), timeout=10)
    assert first.status_code == 202 and first.headers["Retry-After"]
    played = wait_for(
        lambda: (r := requests.get(signed(bucket_stack, sid), timeout=10)).status_code == 200 and r, 60, "played"
    )
    assert len(played.content) == 65536
    assert bucket_stack.media_gets(sid) == 1


class Outage:
    """A TCP forwarder to the gateway that the test can cut: the store away, then back."""

    def __init__(self, target_port: int):
        self.target, self.up, self.conns = target_port, True, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]  # closed by cut()
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=relay, args=(src, dst), daemon=True).start()

    def cut(self) -> None:
        self.up = False
        conns, self.conns = self.conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_store_away_during_upload_and_playback_gives_players_202_and_loses_nothing(rgw, njs, tmp_path):
    outage = Outage(int(rgw["endpoint"].rsplit(":", 1)[1]))
    name = "rc-" + secrets.token_hex(6)
    endpoint = f"http://127.0.0.1:{outage.port}"
    overrides = {
        "STORAGE_URL": f"s3://{name}",
        "S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": rgw["access_key"],
        "AWS_SECRET_ACCESS_KEY": rgw["secret_key"],
        "EDGE_CACHE_DIR": str(tmp_path / "edge"),
        "DOWNLOAD_MAX_RETRIES": "30",
    }
    store = ObjectStore(BucketSettings(name, "", endpoint, rgw["access_key"], rgw["secret_key"], "us-east-1"))
    store.client.create_bucket(Bucket=name)
    try:
        with Stack(tmp_path / "stack", overrides=overrides) as stack:
            stack.start_all(workers=1, concurrency=1)
            call = stack.sim("POST", "/_sim/calls", json={"size": 65536}).json()
            sid = call["recording_sid"]
            outage.cut()
            assert requests.get(signed(stack, sid), timeout=10).status_code == 202  # the miss enqueues the fetch
            worker = stack.procs["worker0"]
            wait_for(lambda: "event=download.retry" in worker.log() and "object store" in worker.log(), 30, "retry")
            for _ in range(3):  # players keep asking while the store is away: never a 5xx
                assert requests.get(signed(stack, sid), timeout=10).status_code == 202
            api = requests.get(
                f"{stack.http_url}/api/recordings/{sid}",
                headers={"Authorization": f"Bearer {stack.api_token}"},
                timeout=10,
            )
            assert api.status_code == 503 and "object store" in api.json()["error"]
            outage.restore()
            played = wait_for(
                lambda: (r := requests.get(signed(stack, sid), timeout=10)).status_code == 200 and r, 60, "played"
            )
            assert played.content == requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3", timeout=10).content
            assert stack.media_gets(sid) == 1  # the verified download was kept for the retries
    finally:
        outage.close()
        store.client.close()


def _tamper(stack, sid: str) -> bytes:
    """Replace the object's bytes in the store, keeping its metadata (as a faulty copy or a hand would)."""
    store, key = stack.store, stack.store.media_key(sid, "mp3")
    original = store.client.get_object(Bucket=store.bucket.bucket, Key=key)["Body"].read()
    metadata = store.head(sid, "mp3")["metadata"]
    tampered = original[:-1] + bytes([original[-1] ^ 0xFF])
    store.client.put_object(Bucket=store.bucket.bucket, Key=key, Body=tampered, Metadata=metadata)
    return original


def test_an_object_changed_in_the_store_is_never_served_and_is_fetched_again(bucket_stack):
    call = place_call(
        bucket_stack.sim_url, bucket_stack.http_url, bucket_stack.account_sid, bucket_stack.auth_token, size=SIZE
    )
    sid = call["recording_sid"]
    wait_for(lambda: bucket_stack.store.head(sid, "mp3"), 60, "the object in the bucket")
    original = _tamper(bucket_stack, sid)
    first = requests.get(signed(bucket_stack, sid), headers={"Range": "bytes=0-99"}, timeout=10)
    assert first.status_code == 202 and original[:100] not in first.content  # a miss, not the changed bytes

    def played():
        response = requests.get(signed(bucket_stack, sid), timeout=10)
        return response.status_code == 200 and response

    assert wait_for(played, 60, "fetched again from Twilio").content == original
    assert bucket_stack.media_gets(sid) == 2  # once, and once more to replace the changed object
    logs = "".join(proc.log() for proc in bucket_stack.procs.values())
    assert "event=object.checksum_mismatch" in logs
