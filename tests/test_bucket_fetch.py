"""fetch_recording in bucket mode (STORAGE_URL) against a mocked Twilio and a real Ceph RADOS Gateway."""

from __future__ import annotations

import hashlib
import secrets

import pytest
import responses

from tests.support import make_settings
from worker import fetch, storage, tiers, twilio_api
from worker.errors import StorageError
from worker.objectstore import ObjectStore

pytestmark = pytest.mark.s3

RE = "RE" + "4" * 32
CA = "CA" + "4" * 32
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 8182


@pytest.fixture
def bucket_settings(tmp_path, rgw):
    """Settings with STORAGE_URL on a new bucket of the test's own."""
    name = "rc-" + secrets.token_hex(6)
    settings = make_settings(
        tmp_path,
        STORAGE_URL=f"s3://{name}/recordings",
        S3_ENDPOINT_URL=rgw["endpoint"],
        AWS_ACCESS_KEY_ID=rgw["access_key"],
        AWS_SECRET_ACCESS_KEY=rgw["secret_key"],
    )
    ObjectStore(settings.bucket).client.create_bucket(Bucket=name)
    return settings


@pytest.fixture
def twilio(bucket_settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(twilio_api.media_url(bucket_settings, RE, "mp3"), body=MP3, headers={"Content-Length": str(len(MP3))})
        yield mock


def _media_gets(twilio, settings) -> int:
    return sum(1 for call in twilio.calls if call.request.url == twilio_api.media_url(settings, RE, "mp3"))


def test_a_recording_lands_in_the_bucket_once_with_its_facts_and_call_index(bucket_settings, redis, twilio):
    session, tier = twilio_api.new_session(bucket_settings), tiers.for_settings(bucket_settings)
    first = fetch.fetch_recording(RE, "mp3", bucket_settings, redis, session, owner_sid=CA, tier=tier)
    second = fetch.fetch_recording(RE, "mp3", bucket_settings, redis, session, owner_sid=CA, tier=tier)
    assert (first.result, second.result) == ("downloaded", "cached")
    assert _media_gets(twilio, bucket_settings) == 1
    found = tier.store.head(RE, "mp3")
    assert found["bytes"] == len(MP3)
    assert found["metadata"]["sha256"] == hashlib.sha256(MP3).hexdigest()
    assert found["metadata"]["call-sid"] == CA
    assert tier.store.resolve_call(CA, "mp3") == RE
    assert list(tier.staging.rglob("*.mp3*")) == []  # nothing left on the local volume
    assert not storage.media_path(bucket_settings.recordings_dir, RE, "mp3").exists()


def test_a_store_that_refuses_the_upload_keeps_the_download_for_the_retry(bucket_settings, redis, twilio, monkeypatch):
    session, tier = twilio_api.new_session(bucket_settings), tiers.for_settings(bucket_settings)

    def refuse(*args, **kwargs):
        raise StorageError("object store unreachable for the test: EndpointConnectionError")

    monkeypatch.setattr(tier.store, "upload", refuse)
    with pytest.raises(StorageError):
        fetch.fetch_recording(RE, "mp3", bucket_settings, redis, session, owner_sid=CA, tier=tier)
    monkeypatch.undo()
    assert tier.store.head(RE, "mp3") is None
    assert [p.name for p in tier.staging.glob("*/*.mp3")] == [f"{RE}.mp3"]  # verified, staged for the retry
    retried = fetch.fetch_recording(RE, "mp3", bucket_settings, redis, session, owner_sid=CA, tier=tier)
    assert (retried.result, retried.bytes) == ("uploaded", len(MP3))
    assert _media_gets(twilio, bucket_settings) == 1  # the retry did not ask Twilio again
    assert tier.store.head(RE, "mp3")["metadata"]["sha256"] == hashlib.sha256(MP3).hexdigest()
    assert list(tier.staging.rglob("*.mp3*")) == []


def _keep_one(settings, redis, tier) -> None:
    fetch.fetch_recording(RE, "mp3", settings, redis, twilio_api.new_session(settings), owner_sid=CA, tier=tier)


def test_reconcile_enqueues_only_what_the_bucket_lacks(bucket_settings, redis, twilio):
    from worker import status
    from worker.celery_app import create_celery
    from worker.maintenance import reconcile
    from worker.publish import FastPublisher

    tier = tiers.for_settings(bucket_settings)
    _keep_one(bucket_settings, redis, tier)
    missing = "RE" + "5" * 32
    for sid in (RE, missing):
        status.remember_webhook(redis, sid, "completed", CA)
    publisher = FastPublisher(create_celery(bucket_settings), redis)
    report = reconcile.reconcile(bucket_settings, redis, None, publisher, tier)
    assert (report.remembered, report.already_cached, report.enqueued) == (2, 1, 1)


def test_delete_from_twilio_rereads_the_objects_checksum_and_marks_the_object(bucket_settings, redis, twilio):
    from dataclasses import replace

    from worker.maintenance import retention

    settings = replace(bucket_settings, delete_from_twilio_after_days=0)
    tier = tiers.for_settings(settings)
    _keep_one(settings, redis, tier)
    twilio.head(twilio_api.media_url(settings, RE, "mp3"), headers={"Content-Length": str(len(MP3))})
    twilio.delete(f"{twilio_api.account_url(settings)}/Recordings/{RE}.json", status=204)
    client, session = twilio_api.make_client(settings), twilio_api.new_session(settings)

    # Bytes in the store that are no longer the ones verified (same metadata): refused, nothing deleted.
    key, found = tier.store.media_key(RE, "mp3"), tier.store.head(RE, "mp3")
    original = tier.store.client.get_object(Bucket=tier.store.bucket.bucket, Key=key)["Body"].read()
    tampered = original[:-1] + b"\x01"
    tier.store.client.put_object(Bucket=tier.store.bucket.bucket, Key=key, Body=tampered, Metadata=found["metadata"])
    assert retention.delete_verified(settings, redis, session, client, tier=tier).refused == 1
    assert not any(call.request.method == "DELETE" for call in twilio.calls)
    tier.store.client.put_object(Bucket=tier.store.bucket.bucket, Key=key, Body=original, Metadata=found["metadata"])

    report = retention.delete_verified(settings, redis, session, client, tier=tier)
    assert (report.due, report.deleted, report.refused) == (1, 1, 0)
    assert tier.facts(RE, "mp3").twilio_deleted_at and tier.facts(RE, "mp3").pinned
    assert tier.store.head(RE, "mp3")["bytes"] == len(MP3)  # the bytes stay
    assert retention.delete_verified(settings, redis, session, client, tier=tier).due == 0


def test_python_eviction_leaves_the_bucket_to_nginx(bucket_settings, redis, twilio):
    from dataclasses import replace

    from worker.maintenance import evict

    settings = replace(bucket_settings, cache_max_bytes=1)
    tier = tiers.for_settings(settings)
    _keep_one(settings, redis, tier)
    assert evict.evict_played(settings, redis).evicted == 0
    assert tier.is_complete(RE, "mp3")


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"AWS_SECRET_ACCESS_KEY": "wrong"}, "403"), ({"STORAGE_URL": "s3://rc-no-such-bucket"}, "404")],
)
def test_healthz_names_a_bucket_it_cannot_use(tmp_path, rgw, change, reason):
    import fakeredis

    from web import create_app

    env = {
        "STORAGE_URL": "s3://rc-any",
        "S3_ENDPOINT_URL": rgw["endpoint"],
        "AWS_ACCESS_KEY_ID": rgw["access_key"],
        "AWS_SECRET_ACCESS_KEY": rgw["secret_key"],
        **change,
    }
    client = create_app(make_settings(tmp_path, **env), redis=fakeredis.FakeRedis()).test_client()
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json["bucket"].startswith("error: object store refused bucket") and reason in answer.json["bucket"]


def test_healthz_is_ok_with_a_bucket_it_can_use(bucket_settings):
    import fakeredis

    from web import create_app

    answer = create_app(bucket_settings, redis=fakeredis.FakeRedis()).test_client().get("/healthz")
    assert answer.status_code == 200 and answer.json["bucket"] == "ok"
