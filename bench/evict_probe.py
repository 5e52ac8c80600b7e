"""One eviction pass in a fresh process, as a worker's pool process runs it: its time and peak memory.

python -m bench.evict_probe    # settings from the environment; prints one JSON line
"""

from __future__ import annotations

import json
import sys
import time

import redis

from worker.config import load_settings
from worker.maintenance import evict


def _peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM): unlike ru_maxrss, not the parent's from before the exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    settings = load_settings()
    r = redis.Redis.from_url(settings.redis_url)
    r.ping()
    started = time.perf_counter()
    report = evict.evict(settings, r)
    seconds = time.perf_counter() - started
    peak_kib = _peak_rss_kib()
    sys.stdout.write(json.dumps({"seconds": seconds, "evicted": report.evicted, "peak_rss_kib": peak_kib}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
