"""Row 8: does anything slow down with 100,000 recordings on the volume instead of 1,000?

Two volumes are written side by side (small and big) and the processes are
restarted on one or the other in turn (small, big, small, big, ...), so
outside load on the machine drifts over both sides alike.
"""

from __future__ import annotations

import os
import random
import re
import resource
import statistics
import time
from pathlib import Path

import requests

from bench import volume
from bench.context import Context
from bench.deploy import Deployment
from bench.report import Check, RowResult
from bench.wrk import WrkRun, run_wrk, write_lines

RANGE = "bytes=0-65535"


def gunicorn_startup(dep: Deployment, timeout: float = 60) -> float:
    """Restart gunicorn (the Procfile's ``web``) and time it until /healthz answers 200."""
    dep.stop("web")
    started = time.perf_counter()
    proc = dep.stack.start("web")
    url = f"http://127.0.0.1:{dep.stack.web_port}/healthz"
    while time.perf_counter() - started < timeout:
        try:
            # Once gunicorn listens, the request waits in the backlog for the first worker.
            if requests.get(url, timeout=timeout).status_code == 200:
                return time.perf_counter() - started
        except requests.ConnectionError:
            if not proc.alive():
                raise RuntimeError(f"gunicorn exited:\n{proc.log()[-2000:]}") from None
        time.sleep(0.01)
    raise TimeoutError("gunicorn did not answer /healthz")


def api_latencies(ports: dict[str, int], sids: dict[str, list[str]], token: str, count: int) -> dict[str, list[float]]:
    """Milliseconds of ``GET /api/recordings/<sid>`` for random cached SIDs, alternating between servers.

    One gunicorn per volume runs at once and the requests alternate between
    them one by one, so a burst of outside load hits both sides alike.
    """
    headers = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {name: [] for name in ports}
    sessions = {name: requests.Session() for name in ports}
    try:
        for index in range(count + 20):
            for name, port in ports.items():
                sid = random.choice(sids[name])
                started = time.perf_counter()
                reply = sessions[name].get(f"http://127.0.0.1:{port}/api/recordings/{sid}", headers=headers, timeout=10)
                elapsed = (time.perf_counter() - started) * 1000
                if reply.status_code != 200 or reply.json()["status"] != "cached":
                    raise RuntimeError(f"API answered {reply.status_code} {reply.text[:200]}")
                if index >= 20:  # the first 20 warm the connections and the workers
                    times[name].append(elapsed)
    finally:
        for session in sessions.values():
            session.close()
    return times


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


def hits(ctx: Context, dep: Deployment, paths: Path) -> tuple[WrkRun, int]:
    """Restart nginx on the current volume, warm it, one measured wrk run; also its EMFILE log lines."""
    dep.stop("nginx")
    dep.start_nginx()
    before = fd_errors(dep)  # counted after the restart: a stopping nginx may still log
    url = dep.stack.http_url + "/"
    run_wrk(url, "hits.lua", [str(paths), RANGE], ctx.budget.warmup_seconds)
    run = run_wrk(
        url, "hits.lua", [str(paths), RANGE], ctx.budget.scale_hit_seconds, server_pids=lambda: dep.pids("nginx")
    )
    return run, fd_errors(dep) - before


def fd_errors(dep: Deployment) -> int:
    """How often nginx logged running out of file descriptors so far."""
    return (dep.stack.base / "nginx.log").read_text(errors="replace").count("Too many open files")


def row_scale(ctx: Context, result: RowResult) -> None:
    """Row 8: start-up, API latency and a hit's CPU with 1,000 vs 100,000 recordings."""
    budget = ctx.budget
    dep, small_dir, big_dir = ctx.scale()
    account, key = dep.stack.account_sid, dep.stack.signing_key
    started = time.perf_counter()
    sides = {
        "small": (small_dir, volume.write_small(small_dir, budget.scale_small, account)),
        "big": (big_dir, volume.write_small(big_dir, budget.scale_big, account)),
    }
    os.sync()  # no writeback during the measurements
    generated = time.perf_counter() - started
    paths = {
        name: write_lines(dep.stack.base / f"paths-{name}.txt", volume.signed_paths(sids, key))
        for name, (_, sids) in sides.items()
    }
    figures: dict[str, dict] = {name: {"startups_s": [], "api_ms": [], "hit": WrkRun(), "emfile": 0} for name in sides}
    for _ in range(budget.scale_startups):
        for name, (folder, _) in sides.items():
            dep.use_volume(folder)
            figures[name]["startups_s"].append(gunicorn_startup(dep))
    # "web" serves the big volume now; a second gunicorn, same settings, serves the small one.
    dep.use_volume(small_dir)
    dep.start_web("web-small", dep.seed_web_port)
    try:
        ports = {"small": dep.seed_web_port, "big": dep.stack.web_port}
        api = api_latencies(
            ports, {n: sids for n, (_, sids) in sides.items()}, dep.stack.api_token, budget.api_requests
        )
    finally:
        dep.stop("web-small")
    for name in sides:
        figures[name]["api_ms"] = api[name]
    for _ in range(2):
        for name, (folder, _) in sides.items():
            dep.use_volume(folder)
            run, emfile = hits(ctx, dep, paths[name])
            figures[name]["hit"].add(run)
            figures[name]["emfile"] += emfile
    summary = {}
    for name, fig in figures.items():
        hit: WrkRun = fig["hit"]
        summary[name] = {
            "recordings": len(sides[name][1]),
            # Outside load only ever adds time: the fastest start is the fairest figure to compare.
            "startup_s": min(fig["startups_s"]),
            "startup_median_s": statistics.median(fig["startups_s"]),
            "startups_s": [round(s, 3) for s in fig["startups_s"]],
            "api_median_ms": statistics.median(fig["api_ms"]),
            "api_p99_ms": p99(fig["api_ms"]),
            "api_requests": len(fig["api_ms"]),
            "hit_cpu_us": hit.cpu_us_per_req,
            "hit": hit.as_dict(),
            "nginx_emfile_errors": fig["emfile"],
        }
    _report(ctx, result, summary, generated, big_dir.parent)


def file_cache_directives(ctx: Context) -> str:
    """The open_file_cache / worker_rlimit_nofile lines of the scale deployment's rendered nginx config."""
    text = (ctx.scale()[0].stack.runtime / "nginx.conf").read_text()
    return (
        " ".join(re.findall(r"^\s*((?:open_file_cache|worker_rlimit_nofile)\b[^;\n]*;)", text, re.MULTILINE)) or "none"
    )


def _report(ctx: Context, result: RowResult, summary: dict, generated: float, where: Path) -> None:
    budget = ctx.budget
    small, big = summary["small"], summary["big"]
    labels = {
        "startup_s": ("gunicorn start-up until /healthz (fastest)", "s", 2),
        "api_median_ms": ("GET /api/recordings/<sid> median", "ms", 2),
        "api_p99_ms": ("GET /api/recordings/<sid> p99", "ms", 2),
        "hit_cpu_us": ("hit server CPU", "µs/req", 1),
    }
    for key, (what, unit, digits) in labels.items():
        ratio = big[key] / small[key]
        figure, anchor = f"{big[key]:.{digits}f} {unit}", f"{small[key]:.{digits}f} {unit}"
        passed = ratio <= 1.2
        if key == "hit_cpu_us":
            for name, side in summary.items():
                hit = side["hit"]
                if hit["requests"] and not (hit["non_2xx_3xx"] or hit["socket_errors"] or side["nginx_emfile_errors"]):
                    continue
                passed = False
                text = (
                    f"broken: {hit['requests'] - hit['non_2xx_3xx']:,} ok, {hit['non_2xx_3xx']:,} non-2xx, "
                    f"{side['nginx_emfile_errors']:,} × EMFILE in nginx's log"
                )
                figure, anchor = (text, anchor) if name == "big" else (figure, text)
        result.checks.append(
            Check(
                f"{budget.scale_big:,} vs {budget.scale_small:,} recordings: {what}",
                figure,
                anchor,
                ratio,
                "≤ 1.2×",
                passed,
            )
        )
    result.details = {"small": small, "big": big, "generate_seconds": round(generated, 1), "volumes": str(where)}
    result.notes += [
        f"Two volumes of small MP3 files (4170 bytes) + sidecar JSON + `CA….mp3` call link per recording, "
        f"written straight to {where}/ ({budget.scale_small + budget.scale_big:,} recordings in {generated:.0f} s); "
        "gunicorn and nginx are restarted on one volume or the other in turn.",
        f"Start-up: fastest of {budget.scale_startups} gunicorn restarts per side (web/gunicorn.conf.py's workers; "
        f"medians {small['startup_median_s']:.2f} s and {big['startup_median_s']:.2f} s), timed "
        f"until /healthz on the gunicorn port answers 200. API: {small['api_requests']} requests per side for "
        "random cached SIDs with the bearer token, straight to two gunicorns (one per volume, same settings), "
        f"alternating request by request. Hits: random file of the volume, `Range: {RANGE}`, wrk 64 connections, "
        f"2 × {budget.scale_hit_seconds:.0f} s per side after a warm-up.",
        f"Hits: {small['hit']['rps']:,.0f} req/s ({small['hit']['non_2xx_3xx']} non-2xx) with "
        f"{budget.scale_small:,} recordings vs {big['hit']['rps']:,.0f} req/s ({big['hit']['non_2xx_3xx']} "
        f"non-2xx, {big['hit']['socket_errors']} socket errors) with {budget.scale_big:,}; nginx logged "
        f"'Too many open files' {small['nginx_emfile_errors']} times with {budget.scale_small:,} and "
        f"{big['nginx_emfile_errors']} times with {budget.scale_big:,} (rendered config: "
        f"`{file_cache_directives(ctx)}`; file-descriptor limit here {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}).",
    ]
