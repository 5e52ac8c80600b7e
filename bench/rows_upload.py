"""Rows 11-12, bucket mode: the worker's upload of a large recording against boto3, and its memory meanwhile."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import boto3
import requests
from botocore.config import Config

from bench.bucket import BucketDeployment
from bench.context import Context
from bench.report import Check, RowResult
from bench.rows_download import worker_memory
from bench.rows_pipeline import FOUR_PROCESSES, MIB, create_call, media_url, send_completed
from bench.volume import new_sid

ANCHOR_PREFIX = "bench-anchor"
SIDES = ("worker", "boto3", "objectstore")


def anchor_client(dep: BucketDeployment):
    """A plain boto3 client of the gateway: only path-style addressing set, every other option its default."""
    return boto3.client(
        "s3",
        endpoint_url=dep.bucket.endpoint_url,
        aws_access_key_id=dep.bucket.access_key_id,
        aws_secret_access_key=dep.bucket.secret_access_key,
        region_name=dep.bucket.region,
        config=Config(s3={"addressing_style": "path"}),
    )


def _fetch(dep: BucketDeployment, sid: str, target: Path) -> None:
    """The recording's media from the simulator into ``target`` (the anchor's copy of the same bytes)."""
    auth = (dep.stack.account_sid, dep.stack.auth_token)
    with requests.get(media_url(dep, sid), auth=auth, stream=True, timeout=60) as reply, target.open("wb") as out:
        reply.raise_for_status()
        for chunk in reply.iter_content(MIB):
            out.write(chunk)


def _rep(dep: BucketDeployment, client, size: int, first: int) -> dict[str, float]:
    """One recording: the worker's upload (webhook → download → upload), boto3's and ObjectStore's of its bytes.

    The three take turns going first; each starts after a ``sync``, with the
    file it uploads in the page cache (the worker's was just written, the
    anchors' was fetched before the first side ran).
    """
    recording = create_call(dep, size=size)["recordings"][0]
    sid, local = recording["sid"], dep.recordings / f"anchor-{recording['sid']}.mp3"
    _fetch(dep, sid, local)
    copy_sid, run = new_sid("RE"), {}
    try:
        for side in SIDES[first:] + SIDES[:first]:
            os.sync()
            started = time.perf_counter()
            if side == "worker":
                if send_completed(dep, recording) != 204:
                    raise RuntimeError("the webhook was not answered 204")
                run["worker_s"] = dep.logged_ms("upload.done", sid) / 1000
                run["worker_download_s"] = dep.logged_ms("download.done", sid) / 1000
                run["webhook_to_uploaded_s"] = time.perf_counter() - started
            elif side == "boto3":
                client.upload_file(str(local), dep.bucket.bucket, f"{ANCHOR_PREFIX}/{sid}.mp3")
                run["boto3_s"] = time.perf_counter() - started
            else:
                dep.store.upload(local, copy_sid, "mp3", {})
                run["objectstore_s"] = time.perf_counter() - started
    finally:
        local.unlink(missing_ok=True)
        keys = (dep.store.media_key(sid, "mp3"), f"{ANCHOR_PREFIX}/{sid}.mp3", dep.store.media_key(copy_sid, "mp3"))
        for key in keys:
            client.delete_object(Bucket=dep.bucket.bucket, Key=key)
    return run


def row_upload(ctx: Context, result: RowResult) -> None:
    """Row 11: the worker's upload of a large recording to RGW (its upload.done ms) vs boto3's upload_file."""
    budget, dep = ctx.budget, ctx.bucket()
    dep.set_workers(FOUR_PROCESSES)
    size, client = budget.upload_mib * MIB, anchor_client(dep)
    runs = [_rep(dep, client, size, rep % len(SIDES)) for rep in range(budget.upload_reps)]
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    worker_mbs, boto3_mbs, store_mbs = (budget.upload_mib / med[k] for k in ("worker_s", "boto3_s", "objectstore_s"))
    result.checks.append(
        Check(
            f"upload {budget.upload_mib} MiB to RGW: worker (upload.done) vs boto3 upload_file",
            f"{worker_mbs:,.0f} MiB/s ({med['worker_s']:.2f} s)",
            f"{boto3_mbs:,.0f} MiB/s ({med['boto3_s']:.2f} s)",
            worker_mbs / boto3_mbs,
            "≥ 0.9×",
            worker_mbs >= 0.9 * boto3_mbs,
        )
    )
    result.checks.append(
        Check(
            f"upload {budget.upload_mib} MiB: ObjectStore.upload in the bench's process vs boto3 upload_file",
            f"{store_mbs:,.0f} MiB/s ({med['objectstore_s']:.2f} s)",
            f"{boto3_mbs:,.0f} MiB/s",
            store_mbs / boto3_mbs,
            "info",
            None,
        )
    )
    result.details = {"size_mib": budget.upload_mib, "runs": runs, "median_s": med}
    result.notes += [
        f"{budget.upload_reps} recording(s) of {budget.upload_mib} MiB from the simulator, 2 Celery workers × "
        "concurrency 2 in bucket mode. Worker: the `ms=` of its `upload.done` line (`BucketTier.keep`: "
        "`ObjectStore.upload` of the verified staged file, a multipart upload of 16 MiB parts, 4 in flight, "
        "each with the Content-MD5 its download computed, then the staged file removed), after a webhook through "
        f"nginx; its download took {med['worker_download_s']:.2f} s before that (`download.done`), webhook → "
        f"uploaded {med['webhook_to_uploaded_s']:.2f} s.",
        "Anchor: boto3's `upload_file` of a copy of the same media (fetched from the simulator into the same "
        "filesystem before the sides ran) with a plain client (path-style, every other option boto3's default: "
        "TransferConfig's 8 MiB parts, 10 threads, its default checksums). Info line: the product's "
        "`ObjectStore.upload` called in the bench's process on that same file. The three take turns going "
        "first, each after a `sync`; the objects are deleted after each recording.",
    ]


def row_memory_bucket(ctx: Context, result: RowResult) -> None:
    """Row 12: peak RSS of the Celery pool process while it downloads, then uploads, a large recording."""
    budget, dep = ctx.budget, ctx.bucket()
    recording = create_call(dep, size=budget.memory_mib * MIB)["recordings"][0]
    sid = recording["sid"]
    done: dict[str, float] = {}  # the upload.done ms, read once it is logged
    memory = worker_memory(dep, recording, lambda: done.setdefault("upload_ms", dep.logged_ms("upload.done", sid)))
    upload_ms, download_ms = done["upload_ms"], dep.logged_ms("download.done", sid)
    stored = dep.store.head(sid, "mp3")
    dep.delete(sid)
    if stored is None or stored["bytes"] != budget.memory_mib * MIB:
        raise RuntimeError(f"the bucket holds {stored and stored['bytes']} bytes for {sid}")
    result.checks.append(memory.check(f"{budget.memory_mib} MiB download + upload (bucket mode)"))
    result.details = {
        **memory.details(budget.memory_mib),
        "download_ms": download_ms,
        "upload_ms": upload_ms,
        "webhook_to_uploaded_s": round(memory.seconds, 2),
    }
    result.notes += [
        f"Row 6's method in bucket mode. {memory.method('upload')} The task downloads to the staging folder "
        f"({download_ms / 1000:.1f} s), then uploads to RGW in 16 MiB parts ({upload_ms / 1000:.1f} s); "
        f"webhook → object in the bucket {memory.seconds:.1f} s.",
    ]
