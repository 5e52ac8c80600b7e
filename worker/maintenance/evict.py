"""Keep the volume within CACHE_MAX_BYTES by evicting the least recently played.

Eviction starts above the budget and stops at a low-water mark (90 %) so it
does not run again on every new download. It never removes a recording
played in the last RECENT_PLAY_SECONDS, one being downloaded, or one whose
Twilio copy was deleted (pinned: it exists nowhere else). An evicted
recording is fetched again on its next play (202, then cached).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from .. import keys, metrics, sidecar, status, storage
from ..config import Settings
from ..locks import MaintenanceLock, release_quietly
from . import Report, playlog

log = logging.getLogger(__name__)

LOW_WATER = 0.9
RECENT_PLAY_SECONDS = 300


@dataclass(frozen=True)
class CachedFile:
    """One recording on the volume, as eviction sees it."""

    sid: str
    fmt: str
    path: Path
    bytes: int
    last_used: float  # last play (atime stamped from nginx's log) or download


@dataclass
class EvictReport(Report):
    """Totals before and after one pass."""

    files: int = 0
    bytes: int = 0
    budget: int = 0
    evicted: int = 0
    evicted_bytes: int = 0
    skipped_recent: int = 0
    skipped_pinned: int = 0


def scan(root: Path) -> list[CachedFile]:
    """Every recording file on the volume (call links are not counted twice)."""
    found = []
    for entry in os.scandir(root):
        named = storage.media_name(entry.name)
        if not named or not entry.is_file(follow_symlinks=False):
            continue
        stat = entry.stat(follow_symlinks=False)
        found.append(CachedFile(*named, Path(entry.path), stat.st_size, max(stat.st_atime, stat.st_mtime)))
    return found


def is_pinned(root: Path, sid: str, fmt: str) -> bool:
    """True when Twilio's copy was deleted: this file is the only one left."""
    facts = sidecar.read(root, sid, fmt)
    return bool(facts and facts.is_pinned)


def evict(settings: Settings, r: redis.Redis, now: float | None = None, dry_run: bool = False) -> EvictReport:
    """One eviction pass; also records the volume's totals for /metrics."""
    now = time.time() if now is None else now
    root = settings.recordings_dir
    files = scan(root)
    report = EvictReport(files=len(files), bytes=sum(f.bytes for f in files), budget=settings.cache_max_bytes)
    r.set(keys.VOLUME_TOTALS, json.dumps({"files": report.files, "bytes": report.bytes}))
    if not settings.cache_max_bytes or report.bytes <= settings.cache_max_bytes:
        return report
    lock = MaintenanceLock(r, "evict", ttl=600)
    if not lock.acquire():
        return report
    try:
        _evict_oldest(root, r, files, report, now, dry_run)
    finally:
        release_quietly(lock)
    log.info("evict.done", extra={**report.as_dict(), "dry_run": dry_run})
    return report


def evict_played(settings: Settings, r: redis.Redis, dry_run: bool = False) -> EvictReport:
    """An eviction pass on fresh last-played stamps: nginx's new playback lines are read first.

    In bucket mode the bucket keeps everything and each host's nginx bounds
    its own edge cache (EDGE_CACHE_MAX_BYTES): nothing to do here.
    """
    if settings.bucket is not None:
        return EvictReport(budget=settings.cache_max_bytes)
    playlog.ingest(settings, r)
    return evict(settings, r, dry_run=dry_run)


def _evict_oldest(root: Path, r: redis.Redis, files, report: EvictReport, now: float, dry_run: bool) -> None:
    total, low_water = report.bytes, int(report.budget * LOW_WATER)
    for item in sorted(files, key=lambda f: f.last_used):
        if total <= low_water:
            break
        if now - item.last_used < RECENT_PLAY_SECONDS or status.is_downloading(r, item.sid, item.fmt):
            report.skipped_recent += 1
            continue
        if is_pinned(root, item.sid, item.fmt):
            report.skipped_pinned += 1
            continue
        if not dry_run:
            # In-flight responses keep their open file; new requests miss and refetch.
            item.path.unlink(missing_ok=True)
            sidecar.remove(root, item.sid, item.fmt)
            metrics.EVICTIONS.inc()
        total -= item.bytes
        report.evicted += 1
        report.evicted_bytes += item.bytes
        log.info(
            "evict.recording",
            extra={"recording_sid": item.sid, "format": item.fmt, "bytes": item.bytes, "dry_run": dry_run},
        )
    if not dry_run:
        r.set(keys.VOLUME_TOTALS, json.dumps({"files": report.files - report.evicted, "bytes": total}))


def volume_totals(r: redis.Redis) -> dict:
    """Files and bytes on the volume as of the last pass."""
    raw = r.get(keys.VOLUME_TOTALS)
    return json.loads(raw) if raw else {}
