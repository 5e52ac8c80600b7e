"""Keep the volume within CACHE_MAX_BYTES by evicting the least recently played.

Eviction starts above the budget and stops at a low-water mark (90 %) so it
does not run again on every new download. It never removes a recording
played in the last RECENT_PLAY_SECONDS, one being downloaded, or one whose
Twilio copy was deleted (pinned: it exists nowhere else). An evicted
recording is fetched again on its next play (202, then cached).

A pass reads the volume's index (``worker.volume_index``), never the
volume's listing: its cost is the recordings it removes, whatever the
volume holds. ``rebuild_index`` scans the volume back into an index Redis
lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from .. import keys, layout, metrics, sidecar, status, volume_index, waveforms
from ..config import Settings
from ..locks import MaintenanceLock, release_quietly
from . import Report, playlog

log = logging.getLogger(__name__)

LOW_WATER = 0.9
RECENT_PLAY_SECONDS = 300
PAGE = 500


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
    index_complete: bool = True


def is_pinned(root: Path, sid: str, fmt: str) -> bool:
    """True when Twilio's copy was deleted: this file is the only one left."""
    facts = sidecar.read(root, sid, fmt)
    return bool(facts and facts.is_pinned)


def evict(settings: Settings, r: redis.Redis, now: float | None = None, dry_run: bool = False) -> EvictReport:
    """One eviction pass over the index's least recently used recordings."""
    now = time.time() if now is None else now
    totals = volume_index.totals(r)
    report = EvictReport(
        files=totals.files, bytes=totals.bytes, budget=settings.cache_max_bytes, index_complete=totals.complete
    )
    if not settings.cache_max_bytes or report.bytes <= settings.cache_max_bytes:
        return report
    lock = MaintenanceLock(r, "evict", ttl=600)
    if not lock.acquire():
        return report
    try:
        _evict_oldest(settings.recordings_dir, r, report, now, dry_run)
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


def _evict_oldest(root: Path, r: redis.Redis, report: EvictReport, now: float, dry_run: bool) -> None:
    total, low_water = report.bytes, int(report.budget * LOW_WATER)
    kept = 0  # ranks passed over: recordings in flight (and, in a dry run, the would-be evicted)
    while total > low_water:
        page = volume_index.oldest(r, kept, PAGE)
        if not page:
            break
        for sid, fmt, last_used in page:
            if total <= low_water:
                break
            if now - last_used < RECENT_PLAY_SECONDS:
                report.skipped_recent += 1
                return  # least recently used first: every later one is as recent
            if status.is_downloading(r, sid, fmt):
                report.skipped_recent += 1
                kept += 1
                continue
            if is_pinned(root, sid, fmt):
                volume_index.pin(r, sid, fmt)  # never in eviction's way again
                report.skipped_pinned += 1
                continue
            freed = _evict_one(root, r, sid, fmt, dry_run)
            kept += dry_run
            total -= freed
            report.evicted += 1
            report.evicted_bytes += freed


def _evict_one(root: Path, r: redis.Redis, sid: str, fmt: str, dry_run: bool) -> int:
    """Remove one recording's file, sidecar and index entry; the bytes the index counted for it."""
    if dry_run:
        counted = int(r.hget(keys.INDEX_SIZES, volume_index.member(sid, fmt)) or 0)
    else:
        # In-flight responses keep their open file; new requests miss and refetch.
        layout.remove(root, sid, f"{sid}.{fmt}")  # gone already (by hand): only the index is left
        sidecar.remove(root, sid, fmt)
        waveforms.remove(root, sid)
        counted = volume_index.remove(r, sid, fmt)
        metrics.EVICTIONS.inc()
    log.info("evict.recording", extra={"recording_sid": sid, "format": fmt, "bytes": counted, "dry_run": dry_run})
    return counted


def rebuild_index(
    settings: Settings, r: redis.Redis, force: bool = False, entries_per_second: float = 50_000
) -> volume_index.RebuildReport | None:
    """Scan the volume into an index Redis does not have (lost, or never built); None when it has one
    (unless ``force``) or another process is scanning. Eviction goes on meanwhile with what is indexed so far.
    """
    if settings.bucket is not None or (volume_index.totals(r).complete and not force):
        return None
    lock = MaintenanceLock(r, "index", ttl=24 * 3600)
    if not lock.acquire():
        return None
    try:
        log.info("index.rebuild_started", extra={"path": str(settings.recordings_dir)})
        report = volume_index.rebuild(settings.recordings_dir, r, entries_per_second)
    finally:
        release_quietly(lock)
    log.info("index.rebuilt", extra={"recordings": report.indexed, "seconds": round(report.seconds, 1)})
    return report
