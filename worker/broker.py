"""What the Redis at REDIS_URL keeps across its own restart.

Celery's queue and the in-flight hints live in Redis. The recordings do not
(the volume or the bucket is the source of truth, and the reconcile finds
what a lost queue held), but queued downloads wait for that reconcile when a
Redis that keeps nothing restarts. `make run` starts its own redis-server
with an append-only file; a Redis it reuses, or one compose points at, may
keep neither that nor snapshots.
"""

from __future__ import annotations

import redis

NOT_DURABLE = (
    "Redis at REDIS_URL keeps neither an append-only file nor snapshots: "
    "queued downloads would not survive its restart (the reconcile would find them again)"
)


def persistence_warning(r: redis.Redis) -> str | None:
    """NOT_DURABLE when the server persists nothing; None when it does, or will not say (CONFIG refused)."""
    try:
        config = r.config_get("appendonly") | r.config_get("save")
    except redis.RedisError:  # managed Redis often forbids CONFIG: no claim either way
        return None
    appendonly, save = str(config.get("appendonly", "")), str(config.get("save", ""))
    return NOT_DURABLE if appendonly == "no" and not save.strip() else None
