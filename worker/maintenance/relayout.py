"""Move a volume written flat by an earlier version into its fan-out folders (``worker.layout``).

Sent by each worker's maintenance timer while the volume has no layout marker
(a new volume's first pass only writes it), and run by operators as
``recording-cache migrate-layout``. Playback goes on meanwhile: readers and
nginx look at the top level too until the marker is there.
"""

from __future__ import annotations

import logging

import redis

from .. import layout
from ..config import Settings
from ..locks import MaintenanceLock, release_quietly

log = logging.getLogger(__name__)


def migrate(settings: Settings, r: redis.Redis) -> layout.MigrateReport | None:
    """Migrate the volume in place, once at a time across hosts; None when another process is at it."""
    root = settings.recordings_dir
    if layout.is_fanned(root):
        return layout.MigrateReport(complete=True)
    # Short: a killed migration must not hold the next one off for long, and two at once are safe
    # (each move is a link that never replaces and an unlink), only redundant.
    lock = MaintenanceLock(r, "layout", ttl=600)
    if not lock.acquire():
        return None
    try:
        report = layout.migrate(root)
    finally:
        release_quietly(lock)
    log.log(
        logging.INFO if report.changed else logging.DEBUG,
        "layout.migrated",
        extra={"path": str(root), **report.as_dict()},
    )
    return report
