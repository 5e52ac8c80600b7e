"""Where a webhook's CPU goes: each variant's WSGI app called in-process.

    python bench/webhook_cpu.py BODIES_FILE ROUNDS PER_VARIANT

BODIES_FILE needs ``bodies_needed(ROUNDS, PER_VARIANT)`` lines.
``bench/whatif.py webhook-cpu`` runs it with the bench stack's environment
(settings, Redis, metrics folder; stderr to a file, as gunicorn's). No nginx,
no gunicorn and no load generator share the cores, so the figures isolate
the Python a variant runs per request, and what redis-server spends for it
(from its own ``INFO cpu``, finer than /proc's 10 ms ticks). Row 3
(``make bench``) measures the whole path; this says which part of the gap to
the bare 204 is which.

Each variant answers the same signed ``completed`` callbacks, except those
that claim recordings (the service), which get fresh ones each round.
Variants are interleaved over rounds; the median round is reported. Prints
one JSON list.
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

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import anchor_apps, whatif_app  # noqa: E402
from simulator.callbacks import RECORDING_STATUS_PATH  # noqa: E402
from web import create_app  # noqa: E402
from worker.runtime import settings_or_exit  # noqa: E402

WebhookBody = tuple[str, bytes]  # (X-Twilio-Signature, form body)


class Variant(NamedTuple):
    label: str
    app: Callable[[], Callable]  # builds the WSGI app
    log_line: bool = True  # the service's webhook.recording_status line
    claims: bool = False  # takes the enqueue claim, so needs recordings of its own


def _service() -> Callable:
    return create_app(settings_or_exit(exit_code=4))


# In the order they run each round; the first is the anchor.
VARIANTS = [
    Variant("bare 204 (row 3's anchor)", lambda: anchor_apps.bare_app),
    Variant("read the body, 204", lambda: whatif_app.build("read-body")),
    Variant("validate only (form + RequestValidator)", lambda: whatif_app.build("validate-only")),
    Variant("validate + one LPUSH, nothing else", lambda: whatif_app.build("validate-push")),
    Variant("validate + SID checks + local spool write", lambda: whatif_app.build("validate-spool")),
    Variant("broker floor (bare + one LPUSH)", lambda: anchor_apps.broker_floor_app),
    Variant("validate + Celery send_task (naive)", lambda: whatif_app.build("validate-send-task")),
    # The log line is skipped by its level check; its arguments are still built.
    Variant("as is, without its log line", _service, log_line=False, claims=True),
    Variant("as is", _service, claims=True),
]


def bodies_needed(rounds: int, per_variant: int) -> int:
    """One shared slice, plus a fresh one per round for each variant that claims."""
    return per_variant * (1 + rounds * sum(variant.claims for variant in VARIANTS))


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


def _measure(app: Callable, bodies: list[WebhookBody], host: str, r: redis.Redis) -> dict:
    """CPU µs per request of this process and of redis-server, and the statuses answered."""
    statuses: dict[str, int] = {}

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses[status[:3]] = statuses.get(status[:3], 0) + 1

    redis_before, started = _redis_cpu(r), time.process_time()
    for signature, body in bodies:
        answer = app(_environ(signature, body, host), start_response)
        for _ in answer:
            pass
        getattr(answer, "close", lambda: None)()
    app_cpu = time.process_time() - started
    redis_cpu = _redis_cpu(r) - redis_before
    n = len(bodies)
    return {"app_us": app_cpu / n * 1e6, "redis_us": redis_cpu / n * 1e6, "statuses": statuses}


def _redis_cpu(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    return cpu["used_cpu_sys"] + cpu["used_cpu_user"]


def _slices(bodies: list[WebhookBody], size: int) -> Iterator[list[WebhookBody]]:
    for start in range(0, len(bodies) - size + 1, size):
        yield bodies[start : start + size]


def _summary(label: str, runs: list[dict], bare_us: float) -> dict:
    """The median round of one variant (by app + redis CPU), statuses over every round."""
    total = statistics.median(run["app_us"] + run["redis_us"] for run in runs)
    statuses: dict[str, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "variant": label,
        "app_cpu_us": round(statistics.median(run["app_us"] for run in runs), 1),
        "redis_cpu_us": round(statistics.median(run["redis_us"] for run in runs), 1),
        "over_bare_us": round(total - bare_us, 1),
        "statuses": statuses,
    }


def main(argv: list[str]) -> int:
    bodies_file, rounds, per_variant = argv[0], int(argv[1]), int(argv[2])
    lines = Path(bodies_file).read_text().splitlines()
    if per_variant < 1 or len(lines) < bodies_needed(rounds, per_variant):
        sys.exit(f"webhook_cpu: {bodies_file} has {len(lines)} bodies, needs {bodies_needed(rounds, per_variant)}")
    bodies = [(sig, body.encode()) for sig, body in (line.split("\t") for line in lines)]
    host = os.environ["PUBLIC_BASE_URL"].split("://", 1)[1]
    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    apps = {variant.label: variant.app() for variant in VARIANTS}
    shared = bodies[:per_variant]
    fresh = _slices(bodies[per_variant:], per_variant)
    hook_log = logging.getLogger("web.twilio_hooks")
    for app in apps.values():  # first calls import, connect and load the Lua script
        _measure(app, shared[:200], host, r)
    runs: dict[str, list[dict]] = {variant.label: [] for variant in VARIANTS}
    try:
        for _ in range(rounds):
            for variant in VARIANTS:
                hook_log.setLevel(logging.NOTSET if variant.log_line else logging.WARNING)
                sent = next(fresh) if variant.claims else shared
                runs[variant.label].append(_measure(apps[variant.label], sent, host, r))
    finally:
        hook_log.setLevel(logging.NOTSET)
    bare = runs[VARIANTS[0].label]
    bare_us = statistics.median(run["app_us"] + run["redis_us"] for run in bare)
    json.dump([_summary(label, measured, bare_us) for label, measured in runs.items()], sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
