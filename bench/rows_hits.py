"""Rows 1-2: cached hits (signed URL, Range) against plain static nginx and Flask send_file."""

from __future__ import annotations

from pathlib import Path

import requests

from bench import volume
from bench.context import Context
from bench.deploy import Deployment
from bench.report import Check, RowResult
from bench.wrk import WrkRun, run_wrk, write_lines

RANGE = "bytes=0-65535"
MIB = 1 << 20


def hit_setup(ctx: Context) -> tuple[Deployment, Path]:
    """Recordings of 1 MiB on the volume and a file of their signed paths (made once)."""
    dep = ctx.main()
    if "hit_paths" not in ctx.cache:
        sids = volume.write_large(dep.recordings, ctx.budget.hit_files, MIB)
        paths = volume.signed_paths(sids, dep.stack.signing_key)
        ctx.cache["hit_paths"] = write_lines(dep.stack.base / "hit-paths.txt", paths)
        expected = volume.mp3_bytes(MIB, sids[0])[:65536]
        for port in (dep.stack.http_port, dep.static_port):
            reply = requests.get(dep.url(port) + paths[0], headers={"Range": RANGE}, timeout=5)
            if reply.status_code != 206 or reply.content != expected:
                raise RuntimeError(f"hit sanity check failed on port {port}: {reply.status_code}")
    return dep, ctx.cache["hit_paths"]


def wrk_hits(dep: Deployment, port: int, paths: Path, seconds: float, extra: str | None = None) -> WrkRun:
    """Random signed paths from ``paths`` with row 1's Range header; CPU of nginx (+ ``extra``)."""

    def pids() -> list[int]:
        return dep.pids("nginx") + (dep.pids(extra) if extra else [])

    return run_wrk(dep.url(port) + "/", "hits.lua", [str(paths), RANGE], seconds, server_pids=pids)


def _clean(run: WrkRun) -> bool:
    return run.non_2xx_3xx == 0 and run.socket_errors == 0


def signed_hits(ctx: Context) -> WrkRun:
    """The signed-hit measurement of row 1, or a fresh one when row 1 did not run."""
    if "signed_hits" not in ctx.cache:
        dep, paths = hit_setup(ctx)
        wrk_hits(dep, dep.stack.http_port, paths, ctx.budget.warmup_seconds)
        ctx.cache["signed_hits"] = wrk_hits(dep, dep.stack.http_port, paths, ctx.budget.hit_seconds)
    return ctx.cache["signed_hits"]


def signed_vs_static(dep: Deployment, paths: Path, rounds: int, per_run: float, warmup: float) -> tuple[WrkRun, WrkRun]:
    """Signed hits and plain static hits of the same files, alternating ABBA… after a warm-up of each."""
    for port in (dep.stack.http_port, dep.static_port):  # page cache and open_file_cache
        wrk_hits(dep, port, paths, warmup)
    signed, static = WrkRun(), WrkRun()
    sides = [(signed, dep.stack.http_port), (static, dep.static_port)]
    for index in range(rounds):  # alternate, swapping who goes first, so drift hits both alike
        for total, port in sides if index % 2 == 0 else sides[::-1]:
            total.add(wrk_hits(dep, port, paths, per_run))
    return signed, static


def row_hit_vs_static(ctx: Context, result: RowResult) -> None:
    """Row 1: same nginx, same files; secure_link location vs a plain static server block."""
    budget = ctx.budget
    dep, paths = hit_setup(ctx)
    per_run = budget.hit_seconds / budget.hit_rounds
    signed, static = signed_vs_static(dep, paths, budget.hit_rounds, per_run, budget.warmup_seconds)
    ctx.cache["signed_hits"] = signed
    clean = _clean(signed) and _clean(static)
    result.checks.append(
        Check(
            "hit req/s: signed URL vs plain static",
            f"{signed.rps:,.0f} req/s",
            f"{static.rps:,.0f} req/s",
            signed.rps / static.rps,
            "≥ 0.95×",
            clean and signed.rps >= 0.95 * static.rps,
        )
    )
    result.checks.append(
        Check(
            "hit server CPU: signed vs static",
            f"{signed.cpu_us_per_req:.1f} µs/req",
            f"{static.cpu_us_per_req:.1f} µs/req",
            signed.cpu_us_per_req / static.cpu_us_per_req,
            "≤ 1.2×",
            clean and signed.cpu_us_per_req <= 1.2 * static.cpu_us_per_req,
        )
    )
    result.details = {"signed": signed.as_dict(), "static": static.as_dict(), "files": budget.hit_files}
    result.notes += [
        f"{budget.hit_files} files of 1 MiB, `Range: {RANGE}`, random file per request, wrk 2 threads × 64 "
        f"connections, {budget.hit_rounds} alternating runs (ABBA…) of {per_run:.0f} s per side after a "
        f"{budget.warmup_seconds:.0f} s warm-up each.",
        "Both are server blocks of one nginx (same workers, sendfile, open_file_cache, access_log to the "
        "same log); CPU is utime+stime of the nginx master and workers.",
        f"Responses: signed {signed.non_2xx_3xx} non-2xx, {signed.socket_errors} socket errors; "
        f"static {static.non_2xx_3xx} non-2xx, {static.socket_errors} socket errors.",
        f"CPU used outside the servers and wrk meanwhile (other processes): signed {signed.outside_cpu_s:.1f} s, "
        f"static {static.outside_cpu_s:.1f} s over {signed.seconds:.0f} s each.",
    ]


def row_hit_vs_seed(ctx: Context, result: RowResult) -> None:
    """Row 2: signed hits vs the seed pattern (Flask send_file under gunicorn, behind the same nginx)."""
    budget = ctx.budget
    dep, paths = hit_setup(ctx)
    signed = signed_hits(ctx)
    dep.start_anchor("seed-web", "bench.anchor_apps:seed_app", dep.seed_web_port)
    try:
        first = paths.read_text().split("\n", 1)[0]
        reply = requests.get(dep.url(dep.seed_port) + first, headers={"Range": RANGE}, timeout=5)
        if reply.status_code != 206 or len(reply.content) != 65536:
            raise RuntimeError(f"seed anchor answered {reply.status_code}")
        wrk_hits(dep, dep.seed_port, paths, budget.warmup_seconds, "seed-web")
        seed = wrk_hits(dep, dep.seed_port, paths, budget.hit_seconds, "seed-web")
    finally:
        dep.stop("seed-web")
    clean = _clean(signed) and _clean(seed)
    result.checks.append(
        Check(
            "hit req/s: signed URL vs seed (Flask send_file)",
            f"{signed.rps:,.0f} req/s",
            f"{seed.rps:,.0f} req/s",
            signed.rps / seed.rps,
            "≥ 12×",
            clean and signed.rps >= 12 * seed.rps,
        )
    )
    result.details = {"signed": signed.as_dict(), "seed": seed.as_dict()}
    result.notes += [
        "Seed anchor: `bench/anchor_apps.py:seed_app` (checks the same signature, then Flask `send_file` "
        "with Range) under gunicorn with `web/gunicorn.conf.py` "
        "(sync, same worker count), reached through the same nginx as a proxy (upstream keepalive 64).",
        f"Seed CPU (nginx + gunicorn): {seed.cpu_us_per_req:.0f} µs/req; p99 latency signed "
        f"{signed.p99_ms:.1f} ms, seed {seed.p99_ms:.1f} ms; seed non-2xx {seed.non_2xx_3xx}, "
        f"socket errors {seed.socket_errors}.",
        "The signed figure is row 1's measurement when row 1 ran in the same invocation.",
    ]
