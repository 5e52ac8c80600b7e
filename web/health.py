"""Health check for load balancers and Prometheus metrics."""

from __future__ import annotations

import logging
import os
import time

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from worker import broker, volume_index
from worker.errors import StorageError
from worker.keys import QUEUE
from worker.maintenance import playlog

from . import services

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when Redis answers and the volume is writable, else 503."""
    settings = services().settings
    checks = {"redis": "ok", "volume": "ok"}
    try:
        services().redis.ping()
    except Exception as exc:  # any failure to answer is "down" here
        checks["redis"] = f"error: {type(exc).__name__}"
    checks["volume"] = _volume_check(settings.recordings_dir)
    if settings.bucket is not None:
        checks["bucket"] = _bucket_check(services().tier)
    healthy = all(value == "ok" for value in checks.values())
    warning = _persistence_warning() if checks["redis"] == "ok" else None
    extra = {"warnings": [warning]} if warning else {}  # worth knowing, not a failure
    return jsonify(status="ok" if healthy else "unavailable", **checks, **extra), 200 if healthy else 503


_PERSISTENCE_CHECK_SECONDS = 60.0
_persistence: dict = {"at": float("-inf"), "warning": None}


def _persistence_warning() -> str | None:
    """broker.persistence_warning, asked at most once a minute per process (health checks come often)."""
    now = time.monotonic()
    if now - _persistence["at"] >= _PERSISTENCE_CHECK_SECONDS:
        _persistence.update(at=now, warning=broker.persistence_warning(services().redis))
    return _persistence["warning"]


def _volume_check(root) -> str:
    """ "ok" when the volume is a writable folder here.

    A volume mounted read-only on purpose (the web container under compose:
    only the worker writes) passes when it is readable.
    """
    try:
        read_only = bool(os.statvfs(root).f_flag & os.ST_RDONLY)
    except OSError:
        problem = "missing"
    else:
        wanted = os.R_OK | os.X_OK if read_only else os.W_OK | os.X_OK
        if root.is_dir() and os.access(root, wanted):
            return "ok"
        problem = f"not a {'readable' if read_only else 'writable'} folder"
    # /healthz is public: the answer names the problem, the log names the path.
    log.warning("healthz.volume", extra={"path": str(root), "problem": problem})
    return f"error: RECORDINGS_DIR is {problem}"


def _bucket_check(tier) -> str:
    """ "ok" when the bucket answers to its keys (a HEAD of the bucket), else the store's reason."""
    try:
        tier.store.check_bucket()
    except StorageError as exc:
        log.warning("healthz.bucket", extra={"problem": str(exc)})
        return f"error: {exc}"
    return "ok"


class RedisStateCollector:
    """Figures kept in Redis, read at scrape time: queue depth, nginx's hits
    (ingested from its playback log by the worker) and the volume's totals."""

    def collect(self):
        r = services().redis
        try:
            depth = r.llen(QUEUE)
            hits, hit_bytes = playlog.counters(r)
            volume = volume_index.totals(r)
        except Exception:  # a scrape must not fail because Redis is down
            return
        gauge = GaugeMetricFamily("recording_cache_queue_depth", "Messages waiting in the Celery queue")
        gauge.add_metric([], depth)
        yield gauge
        yield CounterMetricFamily(
            "recording_cache_playback_hits", "Playback requests nginx served from the volume", value=hits
        )
        yield CounterMetricFamily(
            "recording_cache_playback_hit_bytes", "Bytes nginx sent for playback hits", value=hit_bytes
        )
        for name, help_text, value in (
            ("files", "Recordings on the volume", volume.files),
            ("bytes", "Bytes of recordings on the volume", volume.bytes),
            # 0 while the index is being rebuilt from the volume: the two above are lower bounds then.
            ("index_complete", "1 when the volume's index covers the whole volume", int(volume.complete)),
        ):
            family = GaugeMetricFamily(f"recording_cache_volume_{name}", help_text)
            family.add_metric([], value)
            yield family


@bp.get("/metrics")
def metrics():
    """Prometheus text format, merged over all processes when multiprocess."""
    registry = CollectorRegistry()
    if services().settings.extra.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry  # noqa: N811
    output = generate_latest(registry)
    queue_registry = CollectorRegistry()
    queue_registry.register(RedisStateCollector())
    return Response(output + generate_latest(queue_registry), mimetype=CONTENT_TYPE_LATEST)
