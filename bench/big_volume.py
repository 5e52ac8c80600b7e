"""Row 8's volumes: up to ten million recordings, written fast, and their index in Redis.

A volume of ``count`` recordings gets every recording's media file; one in
``full_every`` also gets its sidecar and its ``CA….mp3`` call link (all of
them when ``full_every`` is 1). Ten million recordings with all three
entries would be 30 million directory entries: more inodes than this
machine's disk has (16.7 M), so the 10 M volume is media files plus a full
sample, which is what the API and the hits are asked for.

SIDs are ``RE`` + an 8-hex prefix of the volume + a 24-hex counter, so a
recording is found again by its number, without a list of ten million
strings in memory.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench import volume
from worker import keys, volume_index

EVICTED_PER_PASS = 100  # the oldest recordings, declared large enough that one pass removes exactly these
BODY_BYTES = 4096  # one filesystem block: ten million bodies of 4170 bytes would take two blocks each (80 GB)
BLOCK = 4096


@dataclass(frozen=True)
class BigVolume:
    """Where a generated volume is and how to name its recordings."""

    root: Path
    count: int
    full_every: int
    prefix: str

    def sid(self, number: int, kind: str = "RE") -> str:
        return f"{kind}{self.prefix}{number:024x}"

    def sample(self, size: int, rng: random.Random) -> list[str]:
        """RecordingSids with sidecars and links, never among the ones a pass evicts."""
        fulls = range(self.full_every * -(-EVICTED_PER_PASS // self.full_every), self.count, self.full_every)
        return [self.sid(n) for n in rng.sample(fulls, min(size, len(fulls)))]


def disk_needed(count: int, full_every: int) -> int:
    """Bytes of disk a volume takes: a block per media file and per sidecar (links live in their inode)."""
    return (count + -(-count // full_every)) * BLOCK


def write(root: Path, count: int, account_sid: str, full_every: int = 1, threads: int = 4) -> BigVolume:
    """Write the volume: one shared 4096-byte MP3 body (content does not matter for serving or the API)."""
    volume.prepare(root)
    big = BigVolume(root, count, full_every, secrets.token_hex(4))
    data = volume.mp3_bytes(BODY_BYTES, "bench-small")
    digest = hashlib.sha256(data).hexdigest()
    when = datetime.now(UTC).isoformat(timespec="seconds")

    def part(start: int) -> None:
        for number in range(start, count, threads):
            sid = big.sid(number)
            volume.write_file(volume.at(root, sid, f"{sid}.mp3"), data)
            if number % full_every == 0:
                call = big.sid(number, "CA")
                facts = volume.sidecar(sid, call, account_sid, data, digest, when)
                volume.write_file(volume.at(root, sid, f"{sid}.mp3.json"), facts)
                volume.link(root, call, sid)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))
    return big


def index(r: redis.Redis, big: BigVolume, now: float, batch: int = 10_000) -> int:
    """Put the volume's index in ``r`` as downloads would have; return the budget for row 8's eviction pass.

    Last uses are spread over the past 30 days, oldest first by number. The
    EVICTED_PER_PASS oldest are indexed as large recordings and the budget is
    set so that a pass removes exactly them: the pass's cost is then compared
    at equal work, whatever the volume holds.
    """
    r.delete(keys.INDEX_BY_USE, keys.INDEX_SIZES, keys.INDEX_TOTALS)
    small = BODY_BYTES
    budget, large = _budget(big.count)
    rest = (big.count - EVICTED_PER_PASS) * small
    step = 30 * 86400 / big.count
    for start in range(0, big.count, batch):
        numbers = range(start, min(start + batch, big.count))
        members = [volume_index.member(big.sid(n), "mp3") for n in numbers]
        sizes = [large if n < EVICTED_PER_PASS else small for n in numbers]
        pipe = r.pipeline(transaction=False)
        pipe.zadd(keys.INDEX_BY_USE, {m: now - 30 * 86400 + n * step for m, n in zip(members, numbers, strict=True)})
        pipe.hset(keys.INDEX_SIZES, mapping=dict(zip(members, sizes, strict=True)))
        pipe.execute()
    total = rest + EVICTED_PER_PASS * large
    r.hset(keys.INDEX_TOTALS, mapping={"files": big.count, "bytes": total})
    r.set(keys.INDEX_COMPLETE, str(int(now)))
    return budget


def _budget(count: int) -> tuple[int, int]:
    """(CACHE_MAX_BYTES, declared size of each of the oldest) so that a pass removes exactly the oldest."""
    rest = (count - EVICTED_PER_PASS) * BODY_BYTES
    budget = -(-rest * 10 // 9) + 20  # the rest is just under the low-water mark (90 %, rounded down)
    return budget, -(-(budget - rest) // EVICTED_PER_PASS) + 1  # the oldest put the volume just over budget


def restore_evicted(r: redis.Redis, big: BigVolume, now: float, account_sid: str) -> None:
    """Put back what a pass evicted (files, sidecars, index entries) for the next pass."""
    data = volume.mp3_bytes(BODY_BYTES, "bench-small")
    digest = hashlib.sha256(data).hexdigest()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    step = 30 * 86400 / big.count
    large = _budget(big.count)[1]
    for n in range(EVICTED_PER_PASS):
        sid = big.sid(n)
        volume.write_file(volume.at(big.root, sid, f"{sid}.mp3"), data)
        if n % big.full_every == 0:
            facts = volume.sidecar(sid, big.sid(n, "CA"), account_sid, data, digest, when)
            volume.write_file(volume.at(big.root, sid, f"{sid}.mp3.json"), facts)
        volume_index.add(r, sid, "mp3", large, now - 30 * 86400 + n * step)
