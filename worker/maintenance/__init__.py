"""The periodic and operator jobs that keep the volume in step with reality.

reconcile  re-enqueue what Twilio or a webhook announced and the volume lacks
backfill   enqueue an older window of Twilio's recordings (operator command)
playlog    turn nginx's playback log into hit counters and last-played stamps
evict      stay within CACHE_MAX_BYTES, least recently played first
retention  delete Twilio's copy of verified recordings (opt-in)
relayout   move a volume an earlier version wrote flat into its fan-out folders

Each is a plain function of settings and clients; Celery beat runs them
through ``worker.tasks`` and operators through ``recording-cache``.
"""

from dataclasses import asdict, dataclass


@dataclass
class Report:
    """What one pass found and did; each job's report adds its counters."""

    def as_dict(self) -> dict:
        """Plain values for logs, task results and the CLI."""
        return asdict(self)
