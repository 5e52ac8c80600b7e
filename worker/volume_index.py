"""An index of the volume in Redis: each recording's size and last use, and the totals.

Eviction and the volume gauges read this instead of listing the volume: a
pass costs what it removes, a scrape costs two Redis reads, whether the
volume holds a thousand recordings or ten million. The volume stays the
source of truth: after Redis lost the index (or on a fresh Redis),
``rebuild`` scans it back at a bounded rate while eviction goes on with what
is indexed so far.

Keys (``worker.keys``): a sorted set of ``{sid}.{fmt}`` by last use (play or
download, Unix seconds); a hash of their sizes; a hash of the totals, kept in
step by the same Lua scripts. A pinned recording (Twilio's copy deleted) is
counted but left out of the sorted set: eviction never has to pass it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from . import keys, layout, storage

log = logging.getLogger(__name__)

# KEYS: by-use, sizes, totals. ARGV: member, bytes, last use, '1' to leave it out of by-use (pinned).
# A member seen again (a rebuild, a re-download) is counted once; a newer use wins.
_ADD = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
local size = tonumber(ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], size)
if old then
  redis.call('HINCRBY', KEYS[3], 'bytes', size - tonumber(old))
else
  redis.call('HINCRBY', KEYS[3], 'files', 1)
  redis.call('HINCRBY', KEYS[3], 'bytes', size)
end
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not seen or tonumber(seen) < tonumber(ARGV[3]) then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
end
return old and 0 or 1
"""

# KEYS: by-use, sizes, totals. ARGV: member. Returns the bytes it counted, or false.
_REMOVE = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if not old then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'files', -1)
redis.call('HINCRBY', KEYS[3], 'bytes', -tonumber(old))
return old
"""

_KEYS = [keys.INDEX_BY_USE, keys.INDEX_SIZES, keys.INDEX_TOTALS]


def member(sid: str, fmt: str) -> str:
    return f"{sid}.{fmt}"


def split(name: bytes | str) -> tuple[str, str]:
    """(sid, fmt) of a member."""
    text = name.decode() if isinstance(name, bytes) else name
    sid, fmt = text.rsplit(".", 1)
    return sid, fmt


@dataclass(frozen=True)
class Totals:
    files: int
    bytes: int
    complete: bool  # False while a rebuild has not finished: the volume holds at least this much


def add(r: redis.Redis, sid: str, fmt: str, size: int, last_used: float, pinned: bool = False, client=None) -> None:
    """Count a kept recording (a download, a rebuild's find); ``client``: a pipeline to queue it on."""
    args = [member(sid, fmt), size, round(last_used, 3), "1" if pinned else "0"]
    r.register_script(_ADD)(keys=_KEYS, args=args, client=client or r)


def remove(r: redis.Redis, sid: str, fmt: str) -> int:
    """Forget a recording that left the volume; the bytes it counted (0 if it was not indexed)."""
    counted = r.register_script(_REMOVE)(keys=_KEYS, args=[member(sid, fmt)])
    return int(counted) if counted else 0


def pin(r: redis.Redis, sid: str, fmt: str) -> None:
    """Keep a recording out of eviction's way for good (still counted)."""
    r.zrem(keys.INDEX_BY_USE, member(sid, fmt))


def played(r: redis.Redis, uses: dict[tuple[str, str], float]) -> None:
    """Move played recordings on; only indexed ones, only forward in time (ZADD XX GT)."""
    if uses:
        r.zadd(keys.INDEX_BY_USE, {member(sid, fmt): when for (sid, fmt), when in uses.items()}, xx=True, gt=True)


def oldest(r: redis.Redis, offset: int, count: int) -> list[tuple[str, str, float]]:
    """(sid, fmt, last use) of ``count`` recordings from rank ``offset``, least recently used first.

    The caller passes over the ones it keeps by raising ``offset``; the ones
    it removes leave the set, so the next page starts where this one ended.
    """
    found = r.zrange(keys.INDEX_BY_USE, offset, offset + count - 1, withscores=True)
    return [(*split(name), score) for name, score in found]


def totals(r: redis.Redis) -> Totals:
    """Files and bytes counted, and whether the count covers the whole volume."""
    pipe = r.pipeline(transaction=False)
    pipe.hmget(keys.INDEX_TOTALS, "files", "bytes")
    pipe.exists(keys.INDEX_COMPLETE)
    (files, size), complete = pipe.execute()
    return Totals(int(files or 0), int(size or 0), bool(complete))


@dataclass
class RebuildReport:
    scanned: int = 0
    indexed: int = 0
    seconds: float = 0.0


def rebuild(root: Path, r: redis.Redis, entries_per_second: float = 50_000, batch: int = 1000) -> RebuildReport:
    """Scan the volume into the index at a bounded rate, then mark it complete.

    Rerun-safe: a recording already indexed keeps its newer last use, and an
    interrupted scan is simply run again. Sidecars are not read: eviction
    finds a pinned recording when it reaches it, and pins it then.
    """
    report = RebuildReport()
    started = time.monotonic()
    for chunk in _batches(_scan(root), batch):
        pipe = r.pipeline(transaction=False)
        for sid, fmt, size, used in chunk:
            add(r, sid, fmt, size, used, client=pipe)
        pipe.execute()
        report.scanned += len(chunk)
        report.indexed += len(chunk)
        # Bounded rate: a rebuild shares the disk (or NFS server) with playback.
        ahead = report.scanned / entries_per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    r.set(keys.INDEX_COMPLETE, str(int(time.time())))
    report.seconds = time.monotonic() - started
    return report


def _scan(root: Path) -> Iterator[tuple[str, str, int, float]]:
    """(sid, fmt, bytes, last use) of each recording file; call links are not recordings."""
    for entry in layout.entries(root):
        named = storage.media_name(entry.name)
        if not named or not entry.is_file(follow_symlinks=False):
            continue
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # evicted meanwhile
            continue
        yield (*named, stat.st_size, max(stat.st_atime, stat.st_mtime))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
