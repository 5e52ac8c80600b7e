"""Where a webhook's CPU goes: each variant's WSGI app called in-process.

    python bench/webhook_cpu.py BODIES_FILE REDIS_PID ROUNDS PER_VARIANT

BODIES_FILE needs PER_VARIANT × (2 × ROUNDS + 1) lines.

``bench/whatif.py webhook-cpu`` runs it with the bench stack's environment
(settings, Redis, metrics folder; stderr to a file, as gunicorn's). No nginx,
no gunicorn and no load generator share the cores, so the figures isolate
the Python a variant runs per request, and what redis-server spends for it.
Row 3 (``make bench``) measures the whole path; this says which part of the
gap to the bare 204 is which.

Each variant answers the same signed ``completed`` callbacks (the service
claims a recording once, so it gets fresh ones each round). Variants are
interleaved over rounds; the median round is reported. Prints one JSON list.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import anchor_apps, whatif_app  # noqa: E402
from bench.procstat import cpu_seconds  # noqa: E402
from simulator.callbacks import RECORDING_STATUS_PATH  # noqa: E402
from web import create_app  # noqa: E402
from worker.runtime import settings_or_exit  # noqa: E402

WebhookBody = tuple[str, bytes]  # (X-Twilio-Signature, form body)


class Variant(NamedTuple):
    label: str
    app: Callable
    log_line: bool = True  # the service's webhook.recording_status line
    claims: bool = False  # takes the enqueue claim, so needs recordings of its own


def _variants() -> list[Variant]:
    """In the order they run each round; the first is the anchor."""
    service = create_app(settings_or_exit(exit_code=4))
    return [
        Variant("bare 204 (row 3's anchor)", anchor_apps.bare_app),
        Variant("read the body, 204", whatif_app.build("read-body")),
        Variant("validate only (form + RequestValidator)", whatif_app.build("validate-only")),
        Variant("validate + SID checks + local spool write", whatif_app.build("validate-spool")),
        Variant("broker floor (bare + one LPUSH)", anchor_apps.broker_floor_app),
        Variant("validate + Celery send_task (naive)", whatif_app.build("validate-send-task")),
        Variant("as is, without its log line", service, log_line=False, claims=True),
        Variant("as is", service, claims=True),
    ]


def _environ(signature: str, body: bytes, host: str) -> dict:
    """What gunicorn hands the app for a webhook nginx proxied."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": RECORDING_STATUS_PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_TWILIO_SIGNATURE": signature,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _measure(app: Callable, bodies: list[WebhookBody], host: str, redis_pid: int) -> dict:
    """CPU µs per request of this process and of redis-server, and the statuses answered."""
    statuses: dict[str, int] = {}

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses[status[:3]] = statuses.get(status[:3], 0) + 1

    redis_before, started = cpu_seconds([redis_pid]).get(redis_pid, 0.0), time.process_time()
    for signature, body in bodies:
        for _ in app(_environ(signature, body, host), start_response):
            pass
    app_cpu = time.process_time() - started
    redis_cpu = cpu_seconds([redis_pid]).get(redis_pid, 0.0) - redis_before
    n = len(bodies)
    return {"app_us": app_cpu / n * 1e6, "redis_us": redis_cpu / n * 1e6, "statuses": statuses}


def _slices(bodies: list[WebhookBody], size: int) -> Iterator[list[WebhookBody]]:
    for start in range(0, len(bodies) - size + 1, size):
        yield bodies[start : start + size]


def main(argv: list[str]) -> int:
    bodies_file, redis_pid, rounds, per_variant = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    lines = Path(bodies_file).read_text().splitlines()
    bodies = [(sig, body.encode()) for sig, body in (line.split("\t") for line in lines)]
    host = os.environ["PUBLIC_BASE_URL"].split("://", 1)[1]
    variants = _variants()
    shared = bodies[:per_variant]
    fresh = _slices(bodies[per_variant:], per_variant)  # only the service claims recordings: a slice per run
    hook_log = logging.getLogger("web.twilio_hooks")
    for variant in variants:  # first calls import, connect and load the Lua script
        _measure(variant.app, shared[:200], host, redis_pid)
    runs: dict[str, list[dict]] = {variant.label: [] for variant in variants}
    for _ in range(rounds):
        for variant in variants:
            hook_log.setLevel(logging.NOTSET if variant.log_line else logging.WARNING)
            sent = next(fresh) if variant.claims else shared
            runs[variant.label].append(_measure(variant.app, sent, host, redis_pid))
    hook_log.setLevel(logging.NOTSET)
    bare = statistics.median(run["app_us"] for run in runs[variants[0].label])
    rows = []
    for label, measured in runs.items():
        app_us = statistics.median(run["app_us"] for run in measured)
        redis_us = statistics.median(run["redis_us"] for run in measured)
        rows.append(
            {
                "variant": label,
                "app_cpu_us": round(app_us, 1),
                "redis_cpu_us": round(redis_us, 1),
                "over_bare_us": round(app_us + redis_us - bare, 1),
                "statuses": measured[-1]["statuses"],
            }
        )
    json.dump(rows, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
