"""gunicorn settings derived from Settings: loopback WEB_PORT, multiprocess metrics."""

import multiprocessing

from worker.runtime import settings_or_exit

_settings = settings_or_exit(exit_code=4)

# The web tier only answers webhooks and misses in milliseconds; nginx faces
# the clients, so sync workers behind it are enough.
bind = f"127.0.0.1:{_settings.web_port}"
workers = min(4, multiprocessing.cpu_count() * 2)
worker_class = "sync"
timeout = 30
graceful_timeout = 10
keepalive = 75
# Each worker imports the app after the fork, so its Redis client and
# publisher (built in create_app) are its own; preloading would share them.
preload_app = False
accesslog = None
errorlog = "-"
loglevel = "warning"


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the multiprocess metrics folder."""
    if _settings.extra.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
