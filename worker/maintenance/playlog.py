"""Turn nginx's playback log into hit counters and last-played stamps.

Hits never touch Python, so nginx writes one line per playback request
(``msec sid format status bytes``) and a periodic task reads what is new:
it adds hits and bytes to counters in Redis (exposed by ``/metrics``) and
stamps each played file's atime on the volume, which is what eviction orders
by. The stamps live on the volume, so they survive a Redis restart.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import redis

from .. import keys, storage, volume_index
from ..config import Settings
from ..locks import MaintenanceLock, release_quietly
from ..sids import FORMATS, is_playable
from . import Report

log = logging.getLogger(__name__)

MAX_READ_BYTES = 64 * 1024 * 1024
HIT_STATUSES = {"200", "206", "304"}


@dataclass
class PlaylogReport(Report):
    """What one ingestion pass read."""

    lines: int = 0
    hits: int = 0
    bytes: int = 0
    stamped: int = 0


def _read_new(path: Path, r: redis.Redis) -> tuple[list[str], str]:
    """Complete lines appended since the last pass, and the position to save."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return [], ""
    saved = (r.get(keys.PLAYLOG_POSITION) or b"").decode()
    inode, _, offset_text = saved.partition(":")
    offset = int(offset_text) if inode == str(stat.st_ino) and offset_text.isdigit() else 0
    if offset > stat.st_size:  # truncated or rotated in place
        offset = 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        chunk = handle.read(MAX_READ_BYTES)
    end = chunk.rfind(b"\n") + 1  # leave a half-written last line for next time
    lines = chunk[:end].decode("ascii", errors="replace").splitlines()
    return lines, f"{stat.st_ino}:{offset + end}"


def has_new_lines(path: Path, r: redis.Redis) -> bool:
    """True when nginx appended to its playback log since the last pass (or a new log began)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    inode, _, offset = (r.get(keys.PLAYLOG_POSITION) or b"").decode().partition(":")
    if inode != str(stat.st_ino) or not offset.isdigit():
        return stat.st_size > 0
    return stat.st_size != int(offset)  # grown, or truncated in place (read from the start)


def ingest(settings: Settings, r: redis.Redis) -> PlaylogReport:
    """Read new playback lines once; concurrent passes are skipped, not doubled."""
    report = PlaylogReport()
    lock = MaintenanceLock(r, "playlog", ttl=120)
    if not lock.acquire():
        return report
    try:
        lines, position = _read_new(settings.playback_log, r)
        last_played: dict[tuple[str, str], float] = {}
        for line in lines:
            report.lines += 1
            parts = line.split()
            if len(parts) != 5 or parts[3] not in HIT_STATUSES:
                continue
            msec, sid, fmt, _status, sent = parts
            if not is_playable(sid) or fmt not in FORMATS:
                continue
            report.hits += 1
            report.bytes += int(sent) if sent.isdigit() else 0
            last_played[sid, fmt] = max(last_played.get((sid, fmt), 0.0), float(msec))
        used: dict[tuple[str, str], float] = {}
        for (sid, fmt), when in last_played.items():
            recording_sid = _stamp(settings.recordings_dir, sid, fmt, when)
            if recording_sid:
                report.stamped += 1
                used[recording_sid, fmt] = max(used.get((recording_sid, fmt), 0.0), when)
        volume_index.played(r, used)
        pipe = r.pipeline()
        pipe.incrby(keys.PLAYBACK_HITS, report.hits).incrby(keys.PLAYBACK_HIT_BYTES, report.bytes)
        if position:
            pipe.set(keys.PLAYLOG_POSITION, position)
        pipe.execute()
    finally:
        release_quietly(lock)
    if report.lines:
        log.info("playlog.ingested", extra=report.as_dict())
    return report


def _stamp(root: Path, sid: str, fmt: str, when: float) -> str | None:
    """Set the played file's atime (following a call's link), keeping its mtime: the
    volume remembers the play for an index rebuild. The RecordingSid played, or None."""
    path = storage.media_path(root, sid, fmt)
    try:
        stat = path.stat()
        if stat.st_atime < when:
            os.utime(path, (when, stat.st_mtime))
    except FileNotFoundError:
        return None
    return sid if sid.startswith("RE") else storage.resolve_link(root, sid, fmt)


def counters(r: redis.Redis) -> tuple[int, int]:
    """Hits and hit bytes ingested so far."""
    hits, hit_bytes = r.mget(keys.PLAYBACK_HITS, keys.PLAYBACK_HIT_BYTES)
    return int(hits or 0), int(hit_bytes or 0)
