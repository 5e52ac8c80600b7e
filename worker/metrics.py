"""Prometheus metrics shared by web and worker processes.

With PROMETHEUS_MULTIPROC_DIR set (the runner and compose set it), every
gunicorn and Celery process writes its samples there and ``/metrics`` merges
them, so worker-side counters show up on the web tier's endpoint.
"""

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter("recording_cache_webhooks_total", "Twilio callbacks received", ["kind", "outcome"])
PLAYBACK_MISSES = Counter("recording_cache_playback_misses_total", "Signed playback requests not on the volume")
ENQUEUED = Counter("recording_cache_fetches_enqueued_total", "Fetch tasks sent", ["reason"])
DOWNLOADS = Counter("recording_cache_downloads_total", "Media downloads by outcome", ["outcome"])
BYTES_DOWNLOADED = Counter("recording_cache_downloaded_bytes_total", "Media bytes downloaded")
DOWNLOAD_SECONDS = Histogram(
    "recording_cache_download_seconds",
    "Time from media GET to verified file",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
LOCK_CONTENDED = Counter("recording_cache_lock_contended_total", "Fetches that found another download in progress")
RECOVERED = Counter("recording_cache_downloads_recovered_total", "Downloads of dead holders sent again", ["reason"])
EVICTIONS = Counter("recording_cache_evictions_total", "Recordings evicted to stay within CACHE_MAX_BYTES")
TWILIO_DELETIONS = Counter(
    "recording_cache_twilio_deletions_total", "Twilio copies deleted after a verified download", ["outcome"]
)
