"""Recordings in an S3-compatible bucket (STORAGE_URL): keys, upload, lookups.

    s3://BUCKET/PREFIX/
      RE<32 hex>.mp3            the verified media; its sidecar's facts are the object's metadata
      calls/CA<32 hex>.mp3.json the call index: {"recording_sid": …, "recorded_at": …}

An object appears under its key only complete: a small one in one PUT, a
large one as a multipart upload that is completed only after every part
landed, and aborted on any failure. The store checks each body against its
Content-MD5, so a corrupted transfer is refused rather than stored. Memory
stays flat: parts are read from the verified local file one at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from .bucket_settings import BucketSettings
from .errors import StorageError
from .sids import is_sid, require_format, require_index_sid, require_sid

log = logging.getLogger(__name__)

ETAG_KEY = "md5-etag"
PART_BYTES = 16 * 1024 * 1024
UPLOAD_THREADS = 4  # parts in flight: the store writes one while the next is hashed and sent
MULTIPART_THRESHOLD = 64 * 1024 * 1024
READ_BYTES = 128 * 1024
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
_MISSING = {"404", "NoSuchKey", "NotFound"}


def origin(bucket: BucketSettings) -> tuple[str, str]:
    """(origin, path) of the bucket's objects over HTTP: path-style at S3_ENDPOINT_URL, as the
    client uses it, or AWS's virtual-hosted style; ``origin + path + "/" + name`` is an object."""
    if bucket.endpoint_url:
        return bucket.endpoint_url, f"/{bucket.bucket}/{bucket.key('')}".rstrip("/")
    return f"https://{bucket.bucket}.s3.{bucket.region}.amazonaws.com", f"/{bucket.key('')}".rstrip("/")


def make_client(bucket: BucketSettings):
    """A boto3 S3 client: SigV4, path-style against a given endpoint, bounded timeouts.

    Checksums are the ones this module sends (Content-MD5): stores such as
    Ceph RGW of Debian 12 reject botocore's newer default checksum headers.
    boto3 is imported here, not with the module: it adds about 0.25 s to the
    start of every process, which the volume mode never needs.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if bucket.endpoint_url else "auto"},
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=bucket.endpoint_url,
        aws_access_key_id=bucket.access_key_id,
        aws_secret_access_key=bucket.secret_access_key,
        region_name=bucket.region,
        config=config,
    )


@contextmanager
def _store_errors(what: str) -> Iterator[None]:
    """Any failure to talk to the store is a StorageError: the task retries later."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise StorageError(
            f"object store refused {what}: {error.get('Code')} {error.get('Message') or ''}".rstrip()
        ) from exc
    except BotoCoreError as exc:
        raise StorageError(f"object store unreachable for {what}: {type(exc).__name__}") from exc


def _digest(handle: BinaryIO, start: int, length: int) -> bytes:
    """MD5 of ``length`` bytes of ``handle`` from ``start``, read a MiB at a time."""
    handle.seek(start)
    digest, left = hashlib.md5(usedforsecurity=False), length
    while left > 0:
        block = handle.read(min(left, 1024 * 1024))
        if not block:
            break
        digest.update(block)
        left -= len(block)
    return digest.digest()


def _file_digest(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as handle:
        return _digest(handle, start, length)


def _object_extra(fmt: str, metadata: dict[str, str], part_digests: list[bytes]) -> dict:
    """Content type and metadata, with the ETag the store will compute for these parts."""
    return {"ContentType": CONTENT_TYPES[fmt], "Metadata": {**metadata, ETAG_KEY: expected_etag(part_digests)}}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def expected_etag(part_digests: list[bytes]) -> str:
    """The ETag S3 gives these bytes: the MD5 of one PUT, or MD5-of-MD5s-N of a multipart upload."""
    if len(part_digests) == 1:
        return part_digests[0].hex()
    return f"{hashlib.md5(b''.join(part_digests), usedforsecurity=False).hexdigest()}-{len(part_digests)}"


class _Part:
    """A read-only window of a file: what one upload_part sends, read as it goes.

    Reads are short (at most READ_BYTES; callers loop until b""). botocore
    asks for 1 MiB at a time to hash the payload, and buffers that size in
    every upload thread stay behind in glibc's per-thread arenas: 4 threads
    took the worker's peak RSS from 92 to 103 MiB (bench row 12).
    """

    def __init__(self, handle: BinaryIO, start: int, length: int):
        self.fd, self.start, self.length, self.position = handle.fileno(), start, length, 0

    def read(self, size: int = -1) -> bytes:
        left = self.length - self.position
        size = min(left, READ_BYTES) if size is None or size < 0 else min(size, left, READ_BYTES)
        data = os.pread(self.fd, size, self.start + self.position)
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.length}[whence]
        self.position = max(0, min(self.length, base + offset))
        return self.position

    def tell(self) -> int:
        return self.position

    def __len__(self) -> int:
        return self.length


class ObjectStore:
    """One bucket (and prefix) holding recordings."""

    def __init__(
        self, bucket: BucketSettings, client=None, part_bytes: int = PART_BYTES, threshold: int = MULTIPART_THRESHOLD
    ):
        self.bucket = bucket
        self.client = client or make_client(bucket)
        self.part_bytes, self.threshold = part_bytes, threshold

    def media_key(self, recording_sid: str, fmt: str) -> str:
        """The key of a recording's media."""
        return self.bucket.key(f"{require_sid(recording_sid, 'RE')}.{require_format(fmt)}")

    def call_key(self, call_sid: str, fmt: str) -> str:
        """The key of a call's (or conference's) index entry."""
        return self.bucket.key(f"calls/{require_index_sid(call_sid)}.{require_format(fmt)}.json")

    def head(self, recording_sid: str, fmt: str) -> dict | None:
        """The stored recording's size and metadata, or None when the bucket lacks it."""
        key = self.media_key(recording_sid, fmt)
        try:
            with _store_errors(key):
                answer = self.client.head_object(Bucket=self.bucket.bucket, Key=key)
        except StorageError as exc:
            if _is_missing(exc):
                return None
            raise
        return {
            "bytes": answer["ContentLength"],
            "metadata": answer.get("Metadata", {}),
            "etag": answer.get("ETag", "").strip('"'),
        }

    def upload(
        self, path: Path, recording_sid: str, fmt: str, metadata: dict[str, str], part_md5s: Sequence[bytes] = ()
    ) -> str:
        """Store a verified local file under the recording's key; return the ETag the store gave it.

        The object's metadata also records the ETag the store must compute
        for these bytes (``md5-etag``), so a later check can re-read the
        store's own checksum and compare (``verify``). ``part_md5s``, the MD5
        of each ``part_bytes`` window when the caller has them already (the
        download computed them), spare reading the file once more.
        """
        key = self.media_key(recording_sid, fmt)
        size = path.stat().st_size
        with _store_errors(key):
            if size >= self.threshold:
                return self._multipart(path, key, size, fmt, metadata, part_md5s)
            with path.open("rb") as handle:
                digest = _digest(handle, 0, size)
                handle.seek(0)
                extra = _object_extra(fmt, metadata, [digest])
                self.client.put_object(
                    Bucket=self.bucket.bucket, Key=key, Body=handle, ContentMD5=_b64(digest), **extra
                )
        return extra["Metadata"][ETAG_KEY]

    def _multipart(
        self, path: Path, key: str, size: int, fmt: str, metadata: dict[str, str], part_md5s: Sequence[bytes]
    ) -> str:
        """Parts in parallel: each hashes (its Content-MD5, botocore's SigV4 payload hash over http)
        and sends from its own file handle, so the cores and the connection stay busy while memory
        stays a few MiB per part in flight."""
        spans = [
            (number, start, min(self.part_bytes, size - start))
            for number, start in enumerate(range(0, size, self.part_bytes), start=1)
        ]
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="upload") as pool:
            digests = list(part_md5s)
            if len(digests) != len(spans):
                digests = list(pool.map(lambda span: _file_digest(path, span[1], span[2]), spans))
            extra = _object_extra(fmt, metadata, digests)
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket.bucket, Key=key, **extra)["UploadId"]
            try:
                etags = list(pool.map(lambda span: self._part(path, key, upload_id, span, digests[span[0] - 1]), spans))
                parts = [
                    {"PartNumber": number, "ETag": etag} for (number, _, _), etag in zip(spans, etags, strict=True)
                ]
                self.client.complete_multipart_upload(
                    Bucket=self.bucket.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
                return extra["Metadata"][ETAG_KEY]  # the store checked every part's MD5: it is its ETag
            except BaseException:
                # Nothing is readable under the key until completion; abort frees the parts.
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket.bucket, Key=key, UploadId=upload_id)
                except (ClientError, BotoCoreError):
                    log.warning("upload.abort_failed", extra={"key": key, "upload_id": upload_id})
                raise

    def _part(self, path: Path, key: str, upload_id: str, span: tuple[int, int, int], digest: bytes) -> str:
        number, start, length = span
        with path.open("rb") as handle:
            answer = self.client.upload_part(
                Bucket=self.bucket.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_Part(handle, start, length),
                ContentLength=length,
                ContentMD5=_b64(digest),
            )
        return answer["ETag"]

    def replace_metadata(self, recording_sid: str, fmt: str, metadata: dict[str, str]) -> None:
        """Give the stored object new metadata (a copy onto itself; the bytes stay)."""
        key = self.media_key(recording_sid, fmt)
        with _store_errors(key):
            self.client.copy_object(
                Bucket=self.bucket.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket.bucket, "Key": key},
                Metadata=metadata,
                MetadataDirective="REPLACE",
                ContentType=CONTENT_TYPES[fmt],
            )

    def recordings(self) -> Iterator[tuple[str, str]]:
        """(RecordingSid, format) of every recording object under the prefix."""
        prefix = self.bucket.key("")
        with _store_errors(f"the listing of {prefix or '/'}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket.bucket, Prefix=prefix, Delimiter="/"
            ):
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :].lstrip("/")
                    sid, _, fmt = name.partition(".")
                    if is_sid(sid, "RE") and fmt in CONTENT_TYPES:
                        yield sid, fmt

    def link_call(self, call_sid: str, recording_sid: str, fmt: str, recorded_at: str | None) -> bool:
        """Point the call's index entry at the recording unless a later one holds it."""
        current = self._call_entry(call_sid, fmt)
        if current and current.get("recording_sid") == recording_sid:
            return False
        if current and str(current.get("recorded_at") or "") > str(recorded_at or ""):
            return False
        key = self.call_key(call_sid, fmt)
        body = json.dumps({"recording_sid": require_sid(recording_sid, "RE"), "recorded_at": recorded_at}).encode()
        md5 = _b64(hashlib.md5(body, usedforsecurity=False).digest())
        with _store_errors(key):
            self.client.put_object(
                Bucket=self.bucket.bucket, Key=key, Body=body, ContentMD5=md5, ContentType="application/json"
            )
        return True

    def resolve_call(self, call_sid: str, fmt: str) -> str | None:
        """The RecordingSid a call's index entry names, or None."""
        entry = self._call_entry(call_sid, fmt)
        sid = entry.get("recording_sid") if entry else None
        return sid if isinstance(sid, str) and sid.startswith("RE") else None

    def _call_entry(self, call_sid: str, fmt: str) -> dict | None:
        key = self.call_key(call_sid, fmt)
        try:
            with _store_errors(key):
                body = self.client.get_object(Bucket=self.bucket.bucket, Key=key)["Body"].read()
        except StorageError as exc:
            if _is_missing(exc):
                return None
            raise
        try:
            entry = json.loads(body)
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    def abort_stale_uploads(self, older_than_seconds: float, now: float | None = None) -> int:
        """Abort multipart uploads under the prefix left open longer than the given age (a killed uploader's)."""
        cutoff = datetime.fromtimestamp((now or time.time()) - older_than_seconds, UTC)
        prefix = self.bucket.key("")
        aborted = 0
        with _store_errors(f"the open uploads under {prefix or '/'}"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket.bucket, Prefix=prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        return aborted

    def check_bucket(self) -> None:
        """StorageError naming the problem when the bucket is missing or the keys are refused."""
        with _store_errors(f"bucket {self.bucket.bucket}"):
            self.client.head_bucket(Bucket=self.bucket.bucket)


def intact(found: dict) -> bool:
    """True when the store's checksum of what it holds (the ETag) is the one recorded at upload.

    An object without the record (not written by this service) is taken as it is.
    """
    recorded = found["metadata"].get(ETAG_KEY)
    return recorded is None or found["etag"] == recorded


def _is_missing(exc: StorageError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ClientError) and str(cause.response.get("Error", {}).get("Code")) in _MISSING
