"""Row 3: signed recording-status webhooks (validate + enqueue) against a bare Flask 204.

Info lines put the service among three more anchors of the same run: the broker
floor (bare + one LPUSH), the validate + push floor (the service's validation
plus that LPUSH, nothing else: the least a validating webhook that answers once
its task is in Redis can do) and the issue's naive validate + ``send_task`` app.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import redis
import requests

from bench.anchor_apps import FLOOR_LIST
from bench.context import Budget, Context
from bench.deploy import Deployment
from bench.report import Check, RowResult
from bench.volume import new_sid
from bench.wrk import WRK_THREADS, WrkRun, run_wrk, write_lines
from simulator.callbacks import RECORDING_STATUS_PATH, recording_status_params, sign
from simulator.resources import rfc2822
from worker.keys import QUEUE

# A fixed offered load for the latency line: far above any one Twilio account's
# recording callbacks (43 million a day), about a third of what the web tier answers flat out.
PACED_RATE = 500
CONNECTIONS = 64
# The issue's "naive anchor" (0.44× the bare 204 where it was measured): the
# service's own validation, then Celery.send_task, as a first version would do.
NAIVE_APP = "bench.anchor_apps:naive_app()"
NAIVE_RATIO_IN_ISSUE = 0.44
# The least a webhook that validates and answers once its task is in Redis can
# do: the service's validation plus the broker floor's LPUSH, nothing else.
VALIDATE_PUSH_APP = "bench.anchor_apps:validate_push_app()"
P99_TARGET_MS = 25
FLOOR_TARGET = 0.85  # of the validate + push floor measured in the same run (issue 17)
# With CONNECTIONS requests always in flight, the mean latency is CONNECTIONS /
# throughput (Little's law), so a p99 under the target needs at least this rate.
RATE_FOR_P99_TARGET = CONNECTIONS / (P99_TARGET_MS / 1000)


def signed_bodies(dep: Deployment, count: int, path: Path) -> Path:
    """``count`` completed-recording webhooks for distinct recordings, signed for PUBLIC_BASE_URL + path."""
    stack = dep.stack
    url = stack.http_url + RECORDING_STATUS_PATH  # PUBLIC_BASE_URL is nginx's URL in the stack
    started = rfc2822(datetime.now(UTC))
    lines = []
    for _ in range(count):
        recording = {
            "sid": new_sid("RE"),
            "call_sid": new_sid("CA"),
            "channels": 1,
            "start_time": started,
            "source": "RecordVerb",
            "duration": "60",
        }
        params = recording_status_params(recording, stack.sim_url, stack.account_sid, "completed")
        lines.append(f"{sign(url, params, stack.auth_token)}\t{urlencode(params)}")
    return write_lines(path, lines)


def _post_first(url: str, bodies: Path) -> int:
    signature, body = bodies.read_text().split("\n", 1)[0].split("\t")
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return requests.post(url + RECORDING_STATUS_PATH, data=body, headers=headers, timeout=5).status_code


def settled_length(r: redis.Redis, timeout: float = 30) -> int:
    """The queue's length once gunicorn has worked off requests wrk already gave up on."""
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        length = r.llen(QUEUE)
        if length == last:
            return length
        last = length
        time.sleep(0.5)
    return last


def row_webhook(ctx: Context, result: RowResult) -> None:
    """Real webhook vs bare 204 app: same nginx, same gunicorn settings, 64 connections."""
    budget, dep = ctx.budget, ctx.main()
    dep.set_workers({})  # measure the web tier alone; the queue is emptied afterwards
    base = dep.stack.base
    warm = signed_bodies(dep, max(500, budget.webhook_bodies // 20), base / "webhooks-warm.txt")
    bodies = signed_bodies(dep, budget.webhook_bodies, base / "webhooks.txt")
    # Recordings of their own: a body the flat-out run already sent finds its
    # enqueue claimed and takes the cheaper duplicate path.
    paced_bodies = signed_bodies(dep, int(PACED_RATE * budget.webhook_seconds * 1.2), base / "webhooks-paced.txt")
    r = redis.Redis.from_url(dep.stack.redis_url)
    args = [RECORDING_STATUS_PATH, str(WRK_THREADS)]
    url = dep.stack.http_url + "/"

    def web_pids() -> list[int]:
        return dep.pids("nginx") + dep.pids("web") + dep.pids("redis")

    try:
        if _post_first(dep.stack.http_url, warm) != 204:
            raise RuntimeError("a signed webhook was not answered 204")
        run_wrk(url, "webhooks.lua", [str(warm), *args], budget.warmup_seconds, CONNECTIONS)
        queued_before = settled_length(r)
        real = run_wrk(url, "webhooks.lua", [str(bodies), *args], budget.webhook_seconds, CONNECTIONS, web_pids)
        enqueued = settled_length(r) - queued_before
        paced_args = [str(paced_bodies), *args, str(PACED_RATE), str(CONNECTIONS)]
        paced = run_wrk(url, "webhooks_paced.lua", paced_args, budget.webhook_seconds, CONNECTIONS)
        anchors = {}
        for name, app, uses_redis in (
            ("bare-web", "bench.anchor_apps:bare_app", False),
            ("floor-web", "bench.anchor_apps:broker_floor_app", True),
            ("validate-push-web", VALIDATE_PUSH_APP, True),
            ("naive-web", NAIVE_APP, True),
        ):
            anchors[name] = _anchor(dep, name, app, warm, bodies, args, budget, uses_redis)
            r.delete(FLOOR_LIST)  # each anchor pushes onto an empty list
    finally:
        r.delete(QUEUE, FLOOR_LIST)  # tens of thousands of fetches for recordings the simulator never had
    _report(result, budget.webhook_bodies, real, anchors, paced, enqueued)


def _anchor(
    dep: Deployment, name: str, app: str, warm: Path, bodies: Path, args: list[str], budget: Budget, uses_redis: bool
) -> WrkRun:
    """Run an anchor app under gunicorn behind the bare server block of the same nginx, and load it.

    Its server CPU counts nginx and its gunicorn, and redis-server when it ``uses_redis``.
    """
    dep.start_anchor(name, app, dep.bare_web_port)
    try:
        url = dep.url(dep.bare_port)
        if _post_first(url, warm) != 204:
            raise RuntimeError(f"the {name} anchor did not answer 204")
        run_wrk(url + "/", "webhooks.lua", [str(warm), *args], budget.warmup_seconds, CONNECTIONS)

        def pids() -> list[int]:
            return dep.pids("nginx") + dep.pids(name) + (dep.pids("redis") if uses_redis else [])

        return run_wrk(url + "/", "webhooks.lua", [str(bodies), *args], budget.webhook_seconds, CONNECTIONS, pids)
    finally:
        dep.stop(name)


def _not_2xx(run: WrkRun) -> int:
    return sum(count for status, count in run.statuses.items() if not status.startswith("2"))


def _report(
    result: RowResult, distinct: int, real: WrkRun, anchors: dict[str, WrkRun], paced: WrkRun, enqueued: int
) -> None:
    bare, floor, naive = anchors["bare-web"], anchors["floor-web"], anchors["naive-web"]
    validate_push = anchors["validate-push-web"]
    ok = real.statuses.get("204", 0)
    non_2xx = _not_2xx(real)
    clean = real.socket_errors == 0 and non_2xx == 0
    result.checks += [
        # Issue 17 restates the target: 0.6× a bare 204 is out of reach on 2 cores for any
        # webhook that validates and enqueues; the floor of such a webhook is the anchor.
        Check(
            "webhook req/s vs validate + push floor (validation + one LPUSH, nothing else)",
            f"{real.rps:,.0f} req/s",
            f"{validate_push.rps:,.0f} req/s ({validate_push.rps / bare.rps:.2f}× bare, "
            f"p99 {validate_push.p99_ms:.1f} ms)",
            real.rps / validate_push.rps,
            f"≥ {FLOOR_TARGET}×",
            clean and real.rps >= FLOOR_TARGET * validate_push.rps,
        ),
        Check(
            "webhook server CPU per request (nginx + gunicorn + redis)",
            f"{real.cpu_us_per_req:.0f} µs/req",
            f"validate + push floor {validate_push.cpu_us_per_req:.0f} µs/req",
            real.cpu_us_per_req / validate_push.cpu_us_per_req if validate_push.cpu_us_per_req else None,
            "info",
            None,
        ),
        Check(
            "webhook req/s: signed + enqueue vs bare Flask 204",
            f"{real.rps:,.0f} req/s",
            f"{bare.rps:,.0f} req/s",
            real.rps / bare.rps,
            "info (was ≥ 0.6×)",
            None,
        ),
        Check(
            "webhook req/s vs broker floor (bare 204 + one Redis LPUSH)",
            f"{real.rps:,.0f} req/s",
            f"{floor.rps:,.0f} req/s",
            real.rps / floor.rps,
            "info",
            None,
        ),
        Check(
            "webhook req/s vs the issue's naive anchor (validate + Celery send_task)",
            f"{real.rps:,.0f} req/s",
            f"{naive.rps:,.0f} req/s ({naive.rps / bare.rps:.2f}× bare; issue: {NAIVE_RATIO_IN_ISSUE}×)",
            real.rps / naive.rps,
            "info",
            None,
        ),
        Check(
            "webhook p99 latency at 64 connections",
            f"{real.p99_ms:.1f} ms",
            f"bare {bare.p99_ms:.1f} ms",
            real.p99_ms / bare.p99_ms if bare.p99_ms else None,
            "info (the target is at 500 req/s offered, below)",
            None,
        ),
        Check(
            f"req/s a p99 under {P99_TARGET_MS} ms needs at {CONNECTIONS} connections (Little's law: mean = "
            f"{CONNECTIONS} ÷ req/s)",
            f"≥ {RATE_FOR_P99_TARGET:,.0f} req/s",
            f"bare 204: {bare.rps:,.0f} req/s, p99 {bare.p99_ms:.1f} ms",
            bare.rps / RATE_FOR_P99_TARGET,
            "info",
            None,
        ),
        Check(
            f"webhook p99 latency, {PACED_RATE:,} req/s offered over {CONNECTIONS} connections",
            f"{paced.p99_ms:.1f} ms",
            f"at {paced.rps:,.0f} req/s; {_not_2xx(paced)} not 2xx, {paced.socket_errors} socket errors",
            None,
            f"< {P99_TARGET_MS} ms",
            paced.p99_ms < P99_TARGET_MS and _not_2xx(paced) == 0 and paced.socket_errors == 0,
        ),
        Check(
            "webhook answers that are not 2xx",
            f"{non_2xx} of {real.requests:,}",
            f"{enqueued:,} tasks queued for {ok:,} × 204",
            None,
            "0; a task per 204",
            clean and enqueued >= ok,
        ),
    ]
    result.details = {
        "real": real.as_dict(),
        "bare": bare.as_dict(),
        "floor": floor.as_dict(),
        "validate_push": validate_push.as_dict(),
        "naive": naive.as_dict(),
        "paced": paced.as_dict(),
        "enqueued": enqueued,
        "distinct_bodies": distinct,
    }
    result.notes += [
        f"wrk 2 threads × 64 connections; each request a different recording's signed `completed` callback "
        f"({distinct:,} precomputed; {'no' if real.requests <= distinct else 'some'} body was sent twice), "
        "signature over PUBLIC_BASE_URL (nginx's URL) + path.",
        f"Status distribution, real: {real.statuses}; bare: {bare.statuses}; socket errors real "
        f"{real.socket_errors}, bare {bare.socket_errors}.",
        f"Latency real p50/p90/p99/max {real.p50_ms:.1f}/{real.p90_ms:.1f}/{real.p99_ms:.1f}/{real.max_ms:.1f} ms; "
        f"bare {bare.p50_ms:.1f}/{bare.p90_ms:.1f}/{bare.p99_ms:.1f}/{bare.max_ms:.1f} ms.",
        f"Server CPU real (nginx+gunicorn+redis) {real.cpu_us_per_req:.0f} µs/req, bare (nginx+gunicorn) "
        f"{bare.cpu_us_per_req:.0f} µs/req, broker floor (nginx+gunicorn+redis) {floor.cpu_us_per_req:.0f} µs/req "
        f"at {floor.rps:,.0f} req/s, p99 {floor.p99_ms:.1f} ms; validate + push floor (nginx+gunicorn+redis) "
        f"{validate_push.cpu_us_per_req:.0f} µs/req; naive validate + send_task (nginx+gunicorn+redis) "
        f"{naive.cpu_us_per_req:.0f} µs/req, p99 {naive.p99_ms:.1f} ms; "
        f"outside CPU meanwhile real {real.outside_cpu_s:.1f} s, bare {bare.outside_cpu_s:.1f} s.",
        "No Celery worker runs during this row (the queue is deleted afterwards), so the figure is the web tier's. "
        "Tasks are counted once the queue stops growing: requests wrk abandoned at the end of its run are still "
        "answered and enqueued by gunicorn afterwards, so tasks ≥ 204s seen by wrk.",
    ]
