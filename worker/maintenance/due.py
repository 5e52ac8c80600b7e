"""Which maintenance jobs have work now: checked cheaply every few seconds, sent as tasks only when they do.

Beat used to send playlog ingestion, eviction and the index check on a
clock, so an idle service logged a line per run and Flower listed mostly
maintenance tasks that did nothing. Now each worker's timer asks ``due`` (a
stat and two Redis reads) and sends a job only when there is something for
it to do; a claim in Redis keeps workers on several hosts from sending it
twice in one period.
"""

from __future__ import annotations

import redis

from .. import keys, layout, volume_index
from ..config import Settings
from . import playlog

CHECK_SECONDS = 15.0
# Job -> the least time between two sends of it (its claim's lifetime).
PERIODS = {
    "maintenance.migrate_layout": 300,
    "maintenance.ingest_playlog": 10,
    "maintenance.evict": 60,
    "maintenance.index_volume": 60,
}


def due(settings: Settings, r: redis.Redis) -> list[str]:
    """The jobs with work to do, each claimed for its period (so sent by one worker)."""
    wanted = []
    if not layout.is_fanned(settings.recordings_dir):  # flat files of an earlier version, or a new volume
        wanted.append("maintenance.migrate_layout")
    if playlog.has_new_lines(settings.playback_log, r):
        wanted.append("maintenance.ingest_playlog")
    if settings.bucket is None:  # a bucket keeps everything; nginx bounds each edge cache
        totals = volume_index.totals(r)
        if not totals.complete:
            wanted.append("maintenance.index_volume")
        if settings.cache_max_bytes and totals.bytes > settings.cache_max_bytes:
            wanted.append("maintenance.evict")
    return [job for job in wanted if r.set(keys.maintenance_claim(job), "1", nx=True, ex=PERIODS[job])]
