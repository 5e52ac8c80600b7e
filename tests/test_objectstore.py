"""The bucket tier against a real Ceph RADOS Gateway: private, checksummed, never a partial object."""

from __future__ import annotations

import hashlib
import os
import secrets

import pytest
import requests

from worker import objectstore
from worker.bucket_settings import BucketSettings
from worker.errors import StorageError
from worker.objectstore import ObjectStore

pytestmark = pytest.mark.s3

RE1, RE2 = "RE" + "1" * 32, "RE" + "2" * 32
CA1 = "CA" + "1" * 32
MIB = 1024 * 1024


def _bucket(rgw: dict, name: str, **changes: str) -> BucketSettings:
    values = {
        "bucket": name,
        "prefix": "recordings",
        "endpoint_url": rgw["endpoint"],
        "access_key_id": rgw["access_key"],
        "secret_access_key": rgw["secret_key"],
        "region": "us-east-1",
        **changes,
    }
    return BucketSettings(**values)


@pytest.fixture
def store(rgw) -> ObjectStore:
    """A new private bucket of this test's own; multipart from 6 MiB in 5 MiB parts (S3's smallest)."""
    settings = _bucket(rgw, "rc-" + secrets.token_hex(6))
    store = ObjectStore(settings, part_bytes=5 * MIB, threshold=6 * MIB)
    store.client.create_bucket(Bucket=settings.bucket)
    return store


def _file(tmp_path, size: int):
    path = tmp_path / "verified.mp3"
    path.write_bytes(b"\xff\xfb\x90\x64" + os.urandom(size - 4))
    return path


def _stored(store: ObjectStore, sid: str) -> bytes:
    return store.client.get_object(Bucket=store.bucket.bucket, Key=store.media_key(sid, "mp3"))["Body"].read()


@pytest.mark.parametrize("size", [4096, 12 * MIB + 17], ids=["one-put", "multipart"])
def test_an_upload_stores_the_bytes_and_the_facts(store, tmp_path, size):
    path = _file(tmp_path, size)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert store.head(RE1, "mp3") is None
    etag = store.upload(path, RE1, "mp3", {"sha256": sha, "call-sid": CA1})
    found = store.head(RE1, "mp3")
    assert found["bytes"] == size and found["etag"] == etag  # the ETag computed before is the store's
    assert found["metadata"] == {"sha256": sha, "call-sid": CA1, "md5-etag": found["etag"]}  # the store's checksum
    assert hashlib.sha256(_stored(store, RE1)).hexdigest() == sha


def test_an_upload_sends_the_part_digests_the_download_computed(store, tmp_path, monkeypatch):
    path = _file(tmp_path, 12 * MIB + 17)
    body = path.read_bytes()
    digests = [hashlib.md5(body[at : at + 5 * MIB]).digest() for at in range(0, len(body), 5 * MIB)]
    monkeypatch.setattr(objectstore, "_file_digest", lambda *span: pytest.fail("the file was hashed again"))
    etag = store.upload(path, RE1, "mp3", {}, part_md5s=digests)
    assert store.head(RE1, "mp3")["etag"] == etag == objectstore.expected_etag(digests)
    assert _stored(store, RE1) == body


def test_part_digests_that_do_not_match_the_bytes_leave_no_object(store, tmp_path):
    path = _file(tmp_path, 12 * MIB + 17)
    wrong = [hashlib.md5(b"other bytes").digest()] * 3
    with pytest.raises(StorageError):
        store.upload(path, RE1, "mp3", {}, part_md5s=wrong)  # the store checks each Content-MD5
    assert store.head(RE1, "mp3") is None
    assert store.client.list_multipart_uploads(Bucket=store.bucket.bucket).get("Uploads", []) == []


def test_the_bucket_is_private(store, tmp_path, rgw):
    store.upload(_file(tmp_path, 4096), RE1, "mp3", {})
    url = f"{rgw['endpoint']}/{store.bucket.bucket}/{store.media_key(RE1, 'mp3')}"
    assert requests.get(url, timeout=10).status_code == 403


def test_a_failed_multipart_upload_leaves_no_object_and_no_open_upload(store, tmp_path, monkeypatch):
    real_upload_part, calls = store.client.upload_part, []

    def fail_the_second_part(**kwargs):
        calls.append(kwargs["PartNumber"])
        if kwargs["PartNumber"] == 2:
            raise ConnectionResetError("the store went away")
        return real_upload_part(**kwargs)

    monkeypatch.setattr(store.client, "upload_part", fail_the_second_part)
    with pytest.raises(ConnectionResetError):
        store.upload(_file(tmp_path, 12 * MIB), RE1, "mp3", {})
    assert 2 in calls  # the other parts may have been in flight at once
    assert store.head(RE1, "mp3") is None
    assert store.client.list_multipart_uploads(Bucket=store.bucket.bucket).get("Uploads", []) == []


def test_a_body_that_does_not_match_its_checksum_is_refused(store, tmp_path, monkeypatch):
    monkeypatch.setattr("worker.objectstore._b64", lambda digest: "AAAAAAAAAAAAAAAAAAAAAA==")
    with pytest.raises(StorageError, match="BadDigest"):
        store.upload(_file(tmp_path, 4096), RE1, "mp3", {})
    monkeypatch.undo()
    assert store.head(RE1, "mp3") is None


def test_an_upload_left_open_by_a_killed_worker_is_aborted_by_the_sweep(store):
    key = store.media_key(RE2, "mp3")
    store.client.create_multipart_upload(Bucket=store.bucket.bucket, Key=key)
    assert store.abort_stale_uploads(older_than_seconds=3600) == 0  # a live one is left alone
    assert store.abort_stale_uploads(older_than_seconds=0, now=2**31) == 1
    assert store.client.list_multipart_uploads(Bucket=store.bucket.bucket).get("Uploads", []) == []


def test_the_call_index_follows_the_latest_recording(store):
    assert store.resolve_call(CA1, "mp3") is None
    assert store.link_call(CA1, RE1, "mp3", "2026-01-01T10:00:00+00:00")
    assert not store.link_call(CA1, RE2, "mp3", "2026-01-01T09:00:00+00:00")  # older: kept RE1
    assert store.link_call(CA1, RE2, "mp3", "2026-01-01T11:00:00+00:00")
    assert store.resolve_call(CA1, "mp3") == RE2


@pytest.mark.parametrize(
    ("changes", "code"),
    [({"bucket": "rc-no-such-bucket"}, "404"), ({"secret_access_key": "wrong"}, "403")],
    ids=["missing-bucket", "wrong-secret"],
)
def test_a_missing_bucket_or_wrong_keys_is_one_clear_error(rgw, changes, code):
    with pytest.raises(StorageError, match=f"object store refused bucket .*{code}"):
        ObjectStore(_bucket(rgw, "rc-whatever", **changes)).check_bucket()
