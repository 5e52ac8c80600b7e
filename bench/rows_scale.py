"""Row 8: does anything cost more with 1,000,000 (and, with ``--full``, 10,000,000) recordings than with 1,000?

Each volume is written side by side and gets its own Redis database holding
its index (``worker.volume_index``); the processes are restarted on one
volume or another in turn (1k, 1M, 10M, 1k, ...), so outside load on the
machine drifts over every side alike. Measured per side: gunicorn start-up,
``GET /api/recordings/<sid>``, a ``/metrics`` scrape, a hit's nginx CPU, and
one eviction pass (time and peak memory) removing the same 100 recordings.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from bench import big_volume, volume
from bench.context import Context
from bench.deploy import Deployment
from bench.report import Check, RowResult
from bench.wrk import WrkRun, run_wrk, write_lines
from stack.ports import free_port

RANGE = "bytes=0-65535"
# Recordings per side the API and the hits ask for, at most. Every side is then
# cut to the smallest side's sample (the 1k volume's 900 outside the ones a pass
# evicts), so each side's working set is the same size in the page cache and a
# ratio shows what the volume's size costs, not how much more of a larger
# sample the cache still lacked (a 20,000 sample against 900 did, in the run of
# 2026-12-07: bench/README.md).
SAMPLE = 20_000
FULL_EVERY_10M = 500  # the 10M volume: sidecar and call link for one recording in 500 (inodes)


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


def latencies(ports: dict[str, int], paths: dict[str, list[str]], token: str, count: int) -> dict[str, list[float]]:
    """Milliseconds of GETs of random ``paths`` per side, alternating between the sides' gunicorns.

    One gunicorn per volume runs at once and the requests alternate between
    them one by one, so a burst of outside load hits every side alike. Each
    side's paths are all asked once first, untimed: the 1k volume was just
    written and is in the page cache, the larger ones' samples were pushed out
    by what was written after them, and a p99 would count those disk reads.
    """
    headers = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {name: [] for name in ports}
    sessions = {name: requests.Session() for name in ports}
    warm = max(20, *(len(p) for p in paths.values()))  # and the connections and the workers
    try:
        for index in range(count + warm):
            for name, port in ports.items():
                # Untimed, every path in turn; then timed, at random.
                path = paths[name][index % len(paths[name])] if index < warm else random.choice(paths[name])
                started = time.perf_counter()
                reply = sessions[name].get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                if reply.status_code != 200 or (path.startswith("/api/") and reply.json()["status"] != "cached"):
                    raise RuntimeError(f"{path} answered {reply.status_code} {reply.text[:200]}")
                if index >= warm:
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


def eviction_pass(dep: Deployment, side: dict) -> dict:
    """One pass (``bench.evict_probe``) in a fresh process on the side's volume and index, then undone."""
    env = {**dep.stack.env(), **side["env"], "CACHE_MAX_BYTES": str(side["budget"])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.evict_probe"], env=env, capture_output=True, text=True, timeout=600, check=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["evicted"] != big_volume.EVICTED_PER_PASS:
        raise RuntimeError(f"the pass evicted {figures['evicted']}, not {big_volume.EVICTED_PER_PASS}")
    big_volume.restore_evicted(side["redis"], side["volume"], side["indexed_at"], dep.stack.account_sid)
    return figures


def scrape_ms(port: int, count: int) -> list[float]:
    """Milliseconds of ``GET /metrics`` on one gunicorn."""
    times = []
    with requests.Session() as session:
        for index in range(count + 5):
            started = time.perf_counter()
            reply = session.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
            if reply.status_code != 200 or "recording_cache_volume_files" not in reply.text:
                raise RuntimeError(f"/metrics answered {reply.status_code}")
            if index >= 5:
                times.append((time.perf_counter() - started) * 1000)
    return times


def make_sides(ctx: Context, dep: Deployment, parent: Path) -> tuple[dict[str, dict], dict[str, float]]:
    """Write each side's volume and its index (Redis database 1, 2, 3 …); the seconds each took."""
    budget = ctx.budget
    counts = [("1k", budget.scale_small, 1), (_label(budget.scale_big), budget.scale_big, 1)]
    if budget.scale_huge:
        counts.append((_label(budget.scale_huge), budget.scale_huge, FULL_EVERY_10M))
    needed = sum(big_volume.disk_needed(count, every) for _, count, every in counts)
    free = shutil.disk_usage(parent).free
    if needed > free - (5 << 30):  # and 5 GiB to spare for everything else on this disk
        raise RuntimeError(f"row 8 needs {needed / 2**30:.0f} GiB on {parent}'s disk, {free / 2**30:.0f} GiB free")
    sides, generated, refused = {}, {}, {}
    for db, (name, count, full_every) in enumerate(counts, 1):
        started = time.perf_counter()
        try:
            big = big_volume.write(parent / name, count, dep.stack.account_sid, full_every)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # With disk to spare, ENOSPC from a create is ext4's directory index full (no large_dir).
            refused[name] = _refusal(exc, count, parent, time.perf_counter() - started)
            continue
        url = f"redis://127.0.0.1:{dep.stack.redis_port}/{db}"
        r = redis.Redis.from_url(url)
        indexed_at = time.time()
        cap = big_volume.index(r, big, indexed_at)
        generated[name] = time.perf_counter() - started
        sids = big.sample(SAMPLE, random.Random(db))
        sides[name] = {
            "volume": big,
            "redis": r,
            "budget": cap,
            "indexed_at": indexed_at,  # the restored oldest get back their own last uses
            "sids": sids,
            "env": {"RECORDINGS_DIR": str(big.root), "REDIS_URL": url},
        }
    same = min((len(side["sids"]) for side in sides.values()), default=0)
    for side in sides.values():
        side["sids"] = side["sids"][:same]
    os.sync()  # no writeback during the measurements
    return sides, generated, refused


def _refusal(exc: OSError, count: int, parent: Path, seconds: float) -> dict:
    """What the filesystem said when a volume could take no more files."""
    name = Path(exc.filename or "").name
    number = int(name[10:34], 16) if name.startswith("RE") and len(name) >= 34 else None
    return {
        "wanted": count,
        "refused_at": number,
        "free_gib": round(shutil.disk_usage(parent).free / 2**30, 1),
        "error": f"{exc.strerror} ({name})",
        "seconds": round(seconds, 1),
    }


def _label(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"


def row_scale(ctx: Context, result: RowResult) -> None:
    """Row 8: start-up, API, /metrics, a hit's CPU and an eviction pass with 1k vs 1M (vs 10M) recordings."""
    budget = ctx.budget
    dep, parent = ctx.scale()
    sides, generated, refused = make_sides(ctx, dep, parent)
    for name, what in refused.items():
        where = f"file #{what['refused_at']:,}" if what["refused_at"] is not None else "a file"
        result.checks.append(
            Check(
                f"{name} recordings on one volume",
                f"refused at {where}: {what['error']}",
                f"{what['free_gib']} GiB still free on the disk",
                None,
                f"{what['wanted']:,} files",
                False,
            )
        )
        result.notes.append(
            f"The {name} volume could not be written: the filesystem refused {where} with {what['error']} while "
            f"{what['free_gib']} GiB were free, after {what['seconds']:.0f} s: the filesystem ran out of inodes, or "
            "a folder's hash index is full (ext4 without large_dir)."
        )
    key = dep.stack.signing_key
    paths = {
        name: write_lines(dep.stack.base / f"paths-{name}.txt", volume.signed_paths(side["sids"], key))
        for name, side in sides.items()
    }
    figures: dict[str, dict] = {
        name: {"startups_s": [], "hit": WrkRun(), "emfile": 0, "evictions": []} for name in sides
    }
    for _ in range(budget.scale_startups):
        for name, side in sides.items():
            dep.use_volume(side["volume"].root, side["env"]["REDIS_URL"])
            figures[name]["startups_s"].append(gunicorn_startup(dep))
    dep.stop("web")
    ports = {name: free_port() for name in sides}
    try:
        for name, side in sides.items():
            dep.stack.start("web", name=f"web-{name}", WEB_PORT=str(ports[name]), **side["env"]).wait_port(
                ports[name], timeout=60
            )
        api = latencies(
            ports,
            {n: [f"/api/recordings/{sid}" for sid in side["sids"]] for n, side in sides.items()},
            dep.stack.api_token,
            budget.api_requests,
        )
        scrapes = latencies(ports, {n: ["/metrics"] for n in sides}, "", budget.api_requests // 4)
    finally:
        for name in sides:
            dep.stop(f"web-{name}")
    for _ in range(2):
        for name, side in sides.items():
            dep.use_volume(side["volume"].root, side["env"]["REDIS_URL"])
            run, emfile = hits(ctx, dep, paths[name])
            figures[name]["hit"].add(run)
            figures[name]["emfile"] += emfile
    for _ in range(3):
        for name, side in sides.items():
            figures[name]["evictions"].append(eviction_pass(dep, side))
    summary = {}
    for name, fig in figures.items():
        hit: WrkRun = fig["hit"]
        passes = fig["evictions"]
        summary[name] = {
            "recordings": sides[name]["volume"].count,
            "generate_s": round(generated[name], 1),
            # Outside load only ever adds time: the fastest start is the fairest figure to compare.
            "startup_s": min(fig["startups_s"]),
            "startup_median_s": statistics.median(fig["startups_s"]),
            "api_median_ms": statistics.median(api[name]),
            "api_p99_ms": p99(api[name]),
            "api_requests": len(api[name]),
            "sample": len(sides[name]["sids"]),
            "scrape_median_ms": statistics.median(scrapes[name]),
            "hit_cpu_us": hit.cpu_us_per_req,
            "hit": hit.as_dict(),
            "nginx_emfile_errors": fig["emfile"],
            "evict_pass_ms": min(p["seconds"] for p in passes) * 1000,
            "evict_passes_ms": [round(p["seconds"] * 1000, 1) for p in passes],
            "evict_peak_rss_mib": max(p["peak_rss_kib"] for p in passes) / 1024,
        }
    _report(ctx, result, summary, parent)
    if refused:
        result.details["refused"] = refused


def file_cache_directives(ctx: Context) -> str:
    """The open_file_cache / worker_rlimit_nofile lines of the scale deployment's rendered nginx config."""
    text = (ctx.scale()[0].stack.runtime / "nginx.conf").read_text()
    return (
        " ".join(re.findall(r"^\s*((?:open_file_cache|worker_rlimit_nofile)\b[^;\n]*;)", text, re.MULTILINE)) or "none"
    )


def _report(ctx: Context, result: RowResult, summary: dict, where: Path) -> None:
    names = list(summary)
    anchor = summary[names[0]]
    labels = {
        "startup_s": ("gunicorn start-up until /healthz (fastest)", "s", 2),
        "api_median_ms": ("GET /api/recordings/<sid> median", "ms", 2),
        "api_p99_ms": ("GET /api/recordings/<sid> p99", "ms", 2),
        "scrape_median_ms": ("GET /metrics median", "ms", 2),
        "hit_cpu_us": ("hit server CPU", "µs/req", 1),
        "evict_pass_ms": (f"eviction pass removing {big_volume.EVICTED_PER_PASS} (fastest of 3)", "ms", 1),
        "evict_peak_rss_mib": ("eviction pass peak RSS (fresh process)", "MiB", 1),
    }
    for name in names[1:]:
        side = summary[name]
        for key, (what, unit, digits) in labels.items():
            ratio = side[key] / anchor[key]
            figure, anchor_text = f"{side[key]:.{digits}f} {unit}", f"{anchor[key]:.{digits}f} {unit}"
            passed = ratio <= 1.2
            if key == "hit_cpu_us":
                broken = [n for n in (names[0], name) if _broken_hits(summary[n])]
                if broken:
                    passed = False
                    figure = f"{figure}; broken hits on {', '.join(broken)}: see details"
            result.checks.append(
                Check(f"{name} vs 1k recordings: {what}", figure, anchor_text, ratio, "≤ 1.2×", passed)
            )
    result.details = {name: side for name, side in summary.items()} | {"volumes": str(where)}
    generated = ", ".join(f"{n}: {s['generate_s']:.0f} s" for n, s in summary.items())
    result.notes += [
        f"Volumes of small MP3 files ({big_volume.BODY_BYTES} bytes, one filesystem block) written straight to "
        f"{where}/ with their index in Redis (one database per side); the 1k and {names[1]} volumes have a "
        "sidecar JSON and a `CA….mp3` call link "
        f"per recording; the 10M volume (--full) has them for one recording in {FULL_EVERY_10M} (30 M entries "
        f"would exceed this disk's 16.7 M inodes). Generation (files + index): {generated}.",
        f"API and /metrics: straight to one gunicorn per side (its volume, its Redis database), alternating "
        f"request by request; API for random cached SIDs of a sample of {anchor['sample']:,} per side (the same "
        "number on every side: the same working set in the page cache), each asked once untimed first. "
        "Hits: the same sample, "
        f"`Range: {RANGE}`, wrk 64 connections, 2 × {ctx.budget.scale_hit_seconds:.0f} s per side. "
        f"Eviction: `python -m bench.evict_probe` per side, 3 passes each removing the "
        f"{big_volume.EVICTED_PER_PASS} oldest (indexed large enough that the pass stops there), undone after "
        f"each; peak RSS is the probe process's. rendered nginx: `{file_cache_directives(ctx)}`; file-descriptor "
        f"limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}.",
    ]


def _broken_hits(side: dict) -> bool:
    hit = side["hit"]
    return not hit["requests"] or bool(hit["non_2xx_3xx"] or hit["socket_errors"] or side["nginx_emfile_errors"])
