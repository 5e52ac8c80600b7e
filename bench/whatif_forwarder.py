"""The forwarder half of the spool what-if (``whatif_app``'s ``spool-design``).

    python -m bench.whatif_forwarder     (WHATIF_SPOOL and the stack's settings in the environment)

Tails the spool file and, for each batch of lines, runs the service's own
claim-and-push Lua script (worker/publish.py) once per task in one pipeline:
remember the callback, take the enqueue claim, LPUSH Celery's message. One
log line per batch. Bench-only: it has no offset file, no fsync and no
recovery, which a real spool design would need.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import redis

from worker import status
from worker.celery_app import create_celery
from worker.publish import FastPublisher
from worker.runtime import settings_or_exit

log = logging.getLogger("bench.whatif_forwarder")
IDLE_SLEEP_SECONDS = 0.005


def forward(publisher: FastPublisher, pipe: redis.client.Pipeline, lines: list[bytes]) -> int:
    """Queue every spool line's claim-and-push on ``pipe``; the number of tasks pushed once executed."""
    for line in lines:
        sid, fmt, call_sid, recorded_at, webhook_status = line.decode().split("\t")
        keys = [f"rc:webhook:{sid}", f"rc:queued:{status.key(sid, fmt)}", publisher.queue]
        message = publisher.message("recordings.fetch", [sid, fmt, call_sid or None, recorded_at or None])
        argv = [status.webhook_value(webhook_status, call_sid), status.STATE_TTL_SECONDS]
        publisher.script(keys=keys, args=[*argv, status.QUEUED_TTL_SECONDS, message], client=pipe)
    return sum(pipe.execute())


def main() -> None:
    settings = settings_or_exit()
    r = redis.Redis.from_url(settings.redis_url)
    publisher = FastPublisher(create_celery(settings), r)
    spool = Path(os.environ["WHATIF_SPOOL"])
    spool.touch()
    pending = b""
    with spool.open("rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                time.sleep(IDLE_SLEEP_SECONDS)
                continue
            started = time.monotonic()
            *lines, pending = (pending + chunk).split(b"\n")
            pushed = forward(publisher, r.pipeline(transaction=False), lines)
            ms = round((time.monotonic() - started) * 1000, 2)
            log.info("spool.forwarded", extra={"lines": len(lines), "pushed": pushed, "ms": ms})


if __name__ == "__main__":
    main()
