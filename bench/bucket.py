"""Bucket mode for rows 9-12: one local RADOS Gateway and a deployment whose recordings live in it.

The gateway is ``stack.rgw`` (a one-monitor, one-OSD Ceph cluster on
loopback, as the tests and ``make run`` use), started once under the run's
temp folder and stopped by ``Context.close()``. The deployment is the same
``Deployment`` as rows 1-7 (Procfile processes, production knobs, the anchor
servers appended to the rendered nginx config) with ``STORAGE_URL`` and the
gateway's endpoint and keys set, and its own edge-cache folder.
"""

from __future__ import annotations

import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.deploy import Deployment
from stack import rgw
from stack.ports import wait_for
from worker.bucket_settings import DEFAULT_REGION, BucketSettings
from worker.objectstore import ObjectStore

PREFIX = "recordings"
WARM_UP_KEY = "bench-warm-up"


class BucketDeployment(Deployment):
    """A Deployment in bucket mode, with an ObjectStore on its bucket for the bench's own use."""

    def __init__(self, base: Path, gateway: dict[str, str]) -> None:
        name = "rc-bench-" + secrets.token_hex(4)
        settings = {
            "STORAGE_URL": f"s3://{name}/{PREFIX}",
            "S3_ENDPOINT_URL": gateway["endpoint"],
            "AWS_ACCESS_KEY_ID": gateway["access_key"],
            "AWS_SECRET_ACCESS_KEY": gateway["secret_key"],
            "AWS_REGION": DEFAULT_REGION,
            "EDGE_CACHE_DIR": str(base / "edge-cache"),
        }
        super().__init__(base, settings=settings)
        self.gateway = gateway
        self.bucket = BucketSettings(
            name, PREFIX, gateway["endpoint"], gateway["access_key"], gateway["secret_key"], DEFAULT_REGION
        )
        self.store = ObjectStore(self.bucket)
        self.origin_log = self.stack.runtime / "bucket-origin.log"

    def start(self, simulator: bool = True) -> BucketDeployment:
        """Create the bucket and warm the gateway, then redis, simulator, gunicorn and nginx."""
        self.store.client.create_bucket(Bucket=self.bucket.bucket)
        self.warm_gateway()
        super().start(simulator)
        return self

    def warm_gateway(self) -> None:
        """One PUT and one multipart upload, then deleted.

        A new gateway creates its data pool on the first write and the pool of
        multipart uploads (``default.rgw.buckets.non-ec``) on the first multipart
        upload, 1.5-1.8 s each, once per cluster: a cost no measured row should pay.
        """
        client, name, body = self.store.client, self.bucket.bucket, b"\0" * (1 << 20)
        client.put_object(Bucket=name, Key=WARM_UP_KEY, Body=body)
        upload_id = client.create_multipart_upload(Bucket=name, Key=WARM_UP_KEY)["UploadId"]
        etag = client.upload_part(Bucket=name, Key=WARM_UP_KEY, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
        parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
        client.complete_multipart_upload(Bucket=name, Key=WARM_UP_KEY, UploadId=upload_id, MultipartUpload=parts)
        client.delete_object(Bucket=name, Key=WARM_UP_KEY)

    def put_files(self, paths: list[Path], sids: list[str], threads: int = 4) -> None:
        """Upload local files as the recordings ``sids`` (ObjectStore.upload, a few at a time)."""
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda pair: self.store.upload(pair[0], pair[1], "mp3", {}), zip(paths, sids, strict=True)))

    def delete(self, sid: str) -> None:
        """Remove a recording's object (large ones, once measured: the gateway's disk is a temp file)."""
        self.store.client.delete_object(Bucket=self.bucket.bucket, Key=self.store.media_key(sid, "mp3"))

    def origin_gets(self) -> int:
        """Requests nginx's signing origin has sent to the bucket so far (lines of bucket-origin.log)."""
        try:
            with self.origin_log.open("rb") as handle:
                return sum(1 for _ in handle)
        except FileNotFoundError:
            return 0

    def rgw_pids(self) -> list[int]:
        """The gateway's daemons (radosgw, ceph-osd, ceph-mon), from their pid files."""
        pids = []
        for daemon in rgw.DAEMONS:
            try:
                pids.append(int((Path(self.gateway["folder"]) / "run" / f"{daemon}.pid").read_text()))
            except (OSError, ValueError):
                continue
        return pids

    def logged_ms(self, event: str, sid: str, timeout: float = 300) -> float:
        """The ``ms=`` of a worker's ``event`` line (``download.done``, ``upload.done``) for ``sid``."""
        pattern = re.compile(rf"event={re.escape(event)}\b.*?\brecording_sid={sid}\b.*?\bms=([0-9.]+)")
        return float(wait_for(lambda: pattern.search(self.worker_logs()), timeout, f"{event} for {sid}").group(1))


def start_gateway(folder: Path) -> dict[str, str]:
    """``stack.rgw.start`` under ``folder``; the endpoint, keys, folder and seconds it took."""
    started = time.monotonic()
    gateway = rgw.start(folder)
    return {**gateway, "folder": str(folder), "start_s": f"{time.monotonic() - started:.1f}"}
