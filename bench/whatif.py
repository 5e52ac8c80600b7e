"""What-if experiments behind the proposed fixes for missed targets (not part of ``make bench``).

    .venv/bin/python bench/whatif.py [webhook] [webhook-cpu] [nofile] [download] [hit-path] [redis-client]
        [nopush] [download-tls]

Each experiment measures the project as it is next to a bench-local copy with
one change, on the same machine in the same run, and writes
``bench/results/whatif.{md,json}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import volume  # noqa: E402
from bench.anchor_apps import FLOOR_LIST  # noqa: E402
from bench.context import Budget, Context  # noqa: E402
from bench.deploy import Deployment  # noqa: E402
from bench.report import machine_info, say  # noqa: E402
from bench.rows_hits import RANGE, hit_setup, signed_vs_static, wrk_hits  # noqa: E402
from bench.rows_pipeline import create_call, media_url  # noqa: E402
from bench.rows_scale import hits  # noqa: E402
from bench.rows_webhook import settled_length, signed_bodies  # noqa: E402
from bench.webhook_cpu import bodies_needed  # noqa: E402
from bench.whatif_tls import exp_download_tls  # noqa: E402
from bench.wrk import WRK_THREADS, WrkRun, run_wrk, write_lines  # noqa: E402
from simulator.callbacks import RECORDING_STATUS_PATH  # noqa: E402
from worker.celery_app import QUEUE  # noqa: E402
from worker.publish import CLAIM_AND_PUSH  # noqa: E402

SPOOL_DESIGN = "spool design: the view as is, a spool write for its EVALSHA, + forwarder"
# (label, gunicorn app; None for the stack's own web process)
WEBHOOK_VARIANTS = [
    ("bare 204 (row 3's anchor)", "bench.anchor_apps:bare_app"),
    ("read the body, 204", 'bench.whatif_app:build("read-body")'),
    ("validate only (form + RequestValidator), 204", 'bench.whatif_app:build("validate-only")'),
    ("broker floor (bare + one LPUSH)", "bench.anchor_apps:broker_floor_app"),
    ("validate + one LPUSH, nothing else", 'bench.whatif_app:build("validate-push")'),
    ("validate + local spool write, no log, no forwarder", 'bench.whatif_app:build("validate-spool")'),
    ("validate + Celery send_task (the issue's naive anchor)", 'bench.whatif_app:build("validate-send-task")'),
    (SPOOL_DESIGN, 'bench.whatif_app:build("spool-design")'),
    ("as is (web.wsgi:app)", None),
]
WEBHOOK_ROUNDS = 2
WEBHOOK_BODIES = 60_000


def exp_webhook(ctx: Context) -> list[dict]:
    """Webhook req/s, p99 and CPU for the real app and for designs that do less, against bare 204.

    The variants are interleaved over rounds, and each is compared with the
    same round's bare 204, because this machine's speed drifts between minutes.
    """
    dep = ctx.main()
    dep.set_workers({})
    dep.stack.overrides["WHATIF_SPOOL"] = str(dep.stack.base / "whatif-spool.log")
    r = redis.Redis.from_url(dep.stack.redis_url)
    warm = signed_bodies(dep, 1_000, dep.stack.base / "whatif-warm.txt")
    rows = []
    for round_no in range(1, WEBHOOK_ROUNDS + 1):
        # Recordings of their own for each variant that claims them ("as is" and
        # the spool design), once, and more than 10 s at 64 connections sends.
        bodies = signed_bodies(dep, WEBHOOK_BODIES, dep.stack.base / f"whatif-bodies-{round_no}.txt")
        spool_bodies = signed_bodies(dep, WEBHOOK_BODIES, dep.stack.base / f"whatif-spool-bodies-{round_no}.txt")
        bare_rps = None
        for label, app in WEBHOOK_VARIANTS:
            spool = dep.stack.base / f"whatif-spool-design-{round_no}.log" if label == SPOOL_DESIGN else None
            run, enqueued, late = _load_webhook(dep, r, app, warm, spool_bodies if spool else bodies, spool)
            bare_rps = bare_rps or run.rps
            rows.append(
                {
                    "round": round_no,
                    "variant": label,
                    "rps": round(run.rps),
                    "vs_bare": round(run.rps / bare_rps, 2),
                    "p99_ms": run.p99_ms,
                    "cpu_us_per_req": round(run.cpu_us_per_req),
                    "statuses": run.statuses,
                    "enqueued": enqueued,
                    "queued_after_run": late,
                }
            )
            say(f"  webhook {label}: {rows[-1]}")
            if set(run.statuses) - {"204"}:
                say(f"  WARNING: {label} answered {run.statuses}: its figures do not count")
    return rows


def _load_webhook(
    dep: Deployment, r: redis.Redis, app: str | None, warm: Path, bodies: Path, spool: Path | None = None
) -> tuple:
    """10 s of distinct signed webhooks at 64 connections against ``app``.

    Returns (WrkRun, tasks queued, tasks queued after wrk stopped). With
    ``spool``, the app writes tasks there and bench/whatif_forwarder.py moves
    them into Redis meanwhile; its CPU counts as the server's while wrk runs,
    and the last figure says how far it was behind when wrk stopped.
    """
    port, name = (dep.stack.http_port, "web") if app is None else (dep.bare_port, "whatif-web")
    spool_before = dep.stack.overrides.get("WHATIF_SPOOL")
    try:
        if spool is not None:
            dep.stack.overrides["WHATIF_SPOOL"] = str(spool)
            dep.stack.spawn("whatif-forwarder", [sys.executable, "-m", "bench.whatif_forwarder"])
        if app is not None:
            dep.start_anchor(name, app, dep.bare_web_port)
        args = [RECORDING_STATUS_PATH, str(WRK_THREADS)]
        run_wrk(dep.url(port) + "/", "webhooks.lua", [str(warm), *args], 1)
        before = settled_length(r)
        run = run_wrk(
            dep.url(port) + "/",
            "webhooks.lua",
            [str(bodies), *args],
            10,
            server_pids=lambda: dep.pids("nginx") + dep.pids(name) + dep.pids("redis") + dep.pids("whatif-forwarder"),
        )
        at_end = r.llen(QUEUE)
        settled = settled_length(r)
        return run, settled - before, settled - at_end
    finally:
        if app is not None:  # "as is" is the stack's own web process
            dep.stop(name)
        dep.stop("whatif-forwarder")
        if spool is not None:
            dep.stack.overrides.pop("WHATIF_SPOOL", None)
            if spool_before is not None:
                dep.stack.overrides["WHATIF_SPOOL"] = spool_before
        r.delete(QUEUE, FLOOR_LIST)


WEBHOOK_CPU_ROUNDS, WEBHOOK_CPU_PER_VARIANT = 3, 3_000


def exp_webhook_cpu(ctx: Context) -> list[dict]:
    """Python and redis-server CPU per webhook, in-process (bench/webhook_cpu.py), against the bare 204."""
    dep = ctx.main()
    dep.set_workers({})
    spool = dep.stack.base / "whatif-spool.log"
    count = bodies_needed(WEBHOOK_CPU_ROUNDS, WEBHOOK_CPU_PER_VARIANT)
    bodies = signed_bodies(dep, count, dep.stack.base / "webhook-cpu-bodies.txt")
    argv = [sys.executable, str(ROOT / "bench" / "webhook_cpu.py"), str(bodies)]
    argv += [str(WEBHOOK_CPU_ROUNDS), str(WEBHOOK_CPU_PER_VARIANT)]
    log_path = dep.stack.base / "webhook-cpu.log"
    try:
        with log_path.open("wb") as log:
            env = {**dep.stack.env(), "WHATIF_SPOOL": str(spool)}
            done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=log, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"webhook_cpu.py exited {done.returncode}:\n{log_path.read_text()[-3000:]}")
        rows = json.loads(done.stdout)
    finally:
        r = redis.Redis.from_url(dep.stack.redis_url)
        r.delete(QUEUE, FLOOR_LIST)  # the naive variant's tasks and the broker floor's pushes
        r.close()
    for row in rows:
        say(f"  webhook-cpu {row}")
    return rows


def file_cache(directive: str) -> Callable[[str], str]:
    """An nginx config edit: whatever open_file_cache lines the template has become ``directive``."""

    def edit(text: str) -> str:
        text = re.sub(r"\n\s*open_file_cache[a-z_]* [^;]*;", "", text)
        return text.replace("sendfile on;", f"sendfile on;\n    {directive}", 1)

    return edit


def worker_nofile(dep: Deployment) -> int:
    """The soft RLIMIT_NOFILE an nginx worker really got (worker_rlimit_nofile may be refused)."""
    for line in Path(f"/proc/{dep.pids('nginx')[-1]}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return 0


def exp_nofile(ctx: Context, count: int = 100_000, hot: int = 1_000) -> list[dict]:
    """Hit CPU with open_file_cache off / on, on a hot set (1,000 files) and on 100,000 random files."""
    dep, small, big = ctx.scale()
    account, key = dep.stack.account_sid, dep.stack.signing_key
    sets = {}
    for name, folder, n in (("hot 1,000", small, hot), ("random 100,000", big, count)):
        paths = volume.signed_paths(volume.write_small(folder, n, account), key)
        sets[name] = (folder, write_lines(dep.stack.base / f"whatif-{n}.txt", paths))
    cached = "open_file_cache max={} inactive=60s; open_file_cache_valid 30s; open_file_cache_errors off;"
    rows = []
    for label, edit in [
        ("as rendered", None),
        ("open_file_cache off", file_cache("open_file_cache off;")),
        ("open_file_cache max=20000", file_cache(cached.format(20_000))),
        ("open_file_cache max=10000", file_cache(cached.format(10_000))),
    ]:
        dep.nginx_edit = edit
        for name, (folder, paths) in sets.items():
            dep.use_volume(folder)
            run, emfile = hits(ctx, dep, paths)
            rows.append(
                {
                    "variant": label,
                    "files": name,
                    "rps": round(run.rps),
                    "non_2xx": run.non_2xx_3xx,
                    "cpu_us_per_req": round(run.cpu_us_per_req, 1) if run.requests else None,
                    "emfile_errors_logged": emfile,
                    "worker_nofile_limit": worker_nofile(dep),
                }
            )
            say(f"  nofile {rows[-1]}")
    dep.nginx_edit = None
    return rows


def _fetch(url: str, auth: tuple[str, str], folder: Path, mode: str) -> float:
    """Seconds to stream one media body: network only, + sha256, + write + fsync, or hashing in a thread."""
    started = time.perf_counter()
    with requests.get(url, auth=auth, stream=True, timeout=60) as reply:
        digest = hashlib.sha256()
        jobs: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        hasher = threading.Thread(target=lambda: [digest.update(c) for c in iter(jobs.get, None)])
        if mode == "threaded":
            hasher.start()
        with tempfile.NamedTemporaryFile(dir=folder) as handle:
            for chunk in reply.iter_content(256 * 1024):
                if mode == "threaded":
                    jobs.put(chunk)
                elif mode != "network":
                    digest.update(chunk)
                if mode in ("write+fsync", "threaded"):
                    handle.write(chunk)
            if mode == "threaded":
                jobs.put(None)
                hasher.join()
            if mode in ("write+fsync", "threaded"):
                handle.flush()
                os.fsync(handle.fileno())
    return time.perf_counter() - started


def exp_download(ctx: Context, mib: int = 200) -> list[dict]:
    """Where a 200 MiB download's time goes, and sha256 moved to a thread (as worker/storage.py could)."""
    dep = ctx.main()
    sid = create_call(dep, size=mib << 20)["recording_sid"]
    auth = (dep.stack.account_sid, dep.stack.auth_token)
    modes = ["network", "sha256", "write+fsync", "threaded"]
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(3):
        for mode in modes:
            times[mode].append(_fetch(media_url(dep, sid), auth, dep.recordings, mode))
    rows = [
        {"variant": m, "median_s": round(sorted(t)[1], 3), "mib_s": round(mib / sorted(t)[1])} for m, t in times.items()
    ]
    for row in rows:
        say(f"  download {row}")
    return rows


def _without_secure_link(text: str) -> str:
    text = text.replace('if ($secure_link != "1") { return 403; }', "", 1)
    return re.sub(r"\n\s*secure_link[^;]*;", "", text)


def _without_added_headers(text: str) -> str:
    """No add_header in the hit location, nor the server's (which it would inherit)."""
    text = text.replace('add_header Cache-Control "private, max-age=3600";', "", 1)
    text = text.replace("add_header Accept-Ranges $accept_ranges_on_partial;", "", 1)
    return text.replace("add_header X-Content-Type-Options nosniff always;", "", 1)


HIT_PATH_VARIANTS: list[tuple[str, Callable[[str], str] | None]] = [
    ("as rendered", None),
    ("no secure_link (nor its if)", _without_secure_link),
    ("regex location, alias and logs only", lambda text: _without_added_headers(_without_secure_link(text))),
]


def _restart_nginx(dep: Deployment, edit: Callable[[str], str] | None) -> None:
    dep.stop("nginx")
    dep.nginx_edit = edit
    dep.start_nginx()


def exp_hit_path(ctx: Context, rounds: int = 2) -> list[dict]:
    """Row 1 (signed hit vs plain static, ABBA) with parts of the hit location removed: what each costs."""
    dep, paths = hit_setup(ctx)
    ratios: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in HIT_PATH_VARIANTS}
    try:
        for _ in range(rounds):
            for label, edit in HIT_PATH_VARIANTS:
                _restart_nginx(dep, edit)
                signed, static = signed_vs_static(dep, paths, 4, 3, ctx.budget.warmup_seconds)
                ratios[label].append((signed.rps / static.rps, signed.cpu_us_per_req / static.cpu_us_per_req))
                say(f"  hit-path {label}: {ratios[label][-1]}")
    finally:
        _restart_nginx(dep, None)
    return [
        {
            "variant": label,
            "rps_vs_static": " / ".join(f"{rps:.2f}" for rps, _ in runs),
            "cpu_vs_static": " / ".join(f"{cpu:.2f}" for _, cpu in runs),
        }
        for label, runs in ratios.items()
    ]


NOPUSH_RANGES = ("bytes=0-65535", "bytes=0-262143", "")  # an <audio> element's first Range, a seek's, a full GET


def _nopush(setting: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if "tcp_nopush off;" not in text:
            raise ValueError("the rendered nginx.conf has no `tcp_nopush off;` to change")
        return text.replace("tcp_nopush off;", f"tcp_nopush {setting};", 1)

    return edit


def _static_padded(setting: str, pad: int) -> Callable[[str], str]:
    """tcp_nopush ``setting``, and a ``pad``-byte extra header on the plain static server's hits."""

    def edit(text: str) -> str:
        text = _nopush(setting)(text)
        if pad:
            # The static anchor's location (bench/deploy.py); the hit location is a regex one.
            pattern = r"(location /recordings/ \{\s*alias [^;]+;)"
            text, found = re.subn(pattern, rf'\1 add_header X-Pad "{"p" * pad}";', text, count=1)
            if not found:
                raise ValueError("no plain static location to pad in the rendered nginx.conf")
        return text

    return edit


def exp_nopush(ctx: Context, rounds: int = 2, seconds: float = 2, pads: int = 6) -> list[dict]:
    """Hits with tcp_nopush on and off (the rendered config: off), signed and plain static, per Range size.

    Then plain static 64 KiB hits with an extra header whose value grows a
    byte at a time: with tcp_nopush on, a hit's cost depended on the length of
    its headers on this kernel, and row 1's two sides differ in that length
    (besides secure_link and the regex location). Rounds alternate the settings.
    """
    dep, paths = hit_setup(ctx)
    figures: dict[tuple[str, str, str], WrkRun] = {}
    try:
        for _ in range(rounds):
            for setting in ("on", "off"):
                _restart_nginx(dep, _nopush(setting))
                for byte_range in NOPUSH_RANGES:
                    for side, port in (("signed", dep.stack.http_port), ("static", dep.static_port)):
                        run = wrk_hits(dep, port, paths, seconds, byte_range=byte_range)
                        figures.setdefault((setting, byte_range or "none (full 1 MiB)", side), WrkRun()).add(run)
            for setting in ("on", "off"):
                for pad in range(pads):
                    _restart_nginx(dep, _static_padded(setting, pad))
                    side = f"static + X-Pad header, {pad}-byte value" if pad else "static, no X-Pad"
                    run = wrk_hits(dep, dep.static_port, paths, seconds)
                    figures.setdefault((setting, RANGE, side), WrkRun()).add(run)
    finally:
        _restart_nginx(dep, None)
    rows = []
    for (setting, byte_range, side), run in figures.items():
        row = {
            "tcp_nopush": setting,
            "range": byte_range,
            "side": side,
            "rps": round(run.rps),
            "nginx_cpu_us_per_req": round(run.cpu_us_per_req, 1),
            "not_2xx": run.non_2xx_3xx,
        }
        rows.append(row)
        say(f"  nopush {row}")
    return rows


def exp_redis_client(ctx: Context, count: int = 20_000) -> list[dict]:
    """Client CPU per Redis command: redis-py's client as the web tier builds it, against its bare Connection."""
    dep = ctx.main()
    r = redis.Redis.from_url(dep.stack.redis_url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30)
    script = r.register_script(CLAIM_AND_PUSH)
    key = "whatif:redis-client"
    argv = ["", "whatif:claim", key]

    def evalsha(send: Callable) -> Callable[[], object]:
        return lambda: send("EVALSHA", script.sha, 3, *argv, "", 60, 60, "m")

    r.script_load(CLAIM_AND_PUSH)
    conn = r.connection_pool.get_connection()

    def raw(*args: object) -> object:
        conn.send_command(*args)
        return conn.read_response()

    def client(*args: object) -> object:
        return r.execute_command(*args)

    # After the first call the claim is taken and the script only checks it: the client does the same work.
    commands = {"LPUSH": lambda send: lambda: send("LPUSH", key, "m"), "EVALSHA (claim-and-push script)": evalsha}
    rows = []
    try:
        for name, make in commands.items():
            row = {"command": name}
            for label, send in (("redis-py client", client), ("bare Connection", raw)):
                call = make(send)
                best = float("inf")
                for _ in range(3):
                    started = time.process_time()
                    for _ in range(count):
                        call()
                    best = min(best, (time.process_time() - started) / count * 1e6)
                    r.delete(key, "whatif:claim")
                row[f"{label} µs"] = round(best, 1)
            rows.append(row)
            say(f"  redis-client {row}")
    finally:
        r.connection_pool.release(conn)
        r.delete(key, "whatif:claim")
        r.close()
    return [{**row, "redis-py": redis.__version__} for row in rows]


# By name, in the order a run without arguments takes them.
EXPERIMENTS: dict[str, Callable[[Context], list[dict]]] = {
    "webhook": exp_webhook,
    "webhook-cpu": exp_webhook_cpu,
    "nofile": exp_nofile,
    "download": exp_download,
    "hit-path": exp_hit_path,
    "redis-client": exp_redis_client,
    "nopush": exp_nopush,
    "download-tls": exp_download_tls,
}


def main(argv: list[str]) -> int:
    """Run the named experiments (default: all) and write whatif.{md,json}."""
    chosen = argv or list(EXPERIMENTS)
    unknown = [name for name in chosen if name not in EXPERIMENTS]
    if unknown:
        sys.exit(f"whatif: unknown experiment {', '.join(unknown)}; one of {', '.join(EXPERIMENTS)}")
    base = Path(tempfile.mkdtemp(prefix="rc-whatif-"))
    ctx = Context(base, Budget(), Path("/dev/shm") if Path("/dev/shm").is_dir() else base)
    results: dict[str, dict] = {}
    machine = machine_info()
    ran = f"{machine['date'][:10]}, {machine['cpu_model']}, {machine['cores']} cores"
    try:
        for name in chosen:
            say(f"what-if: {name}")
            results[name] = {"ran": ran, "rows": EXPERIMENTS[name](ctx)}
    finally:
        ctx.close()
    out = ROOT / "bench" / "results"
    # Experiments not run this time keep their last figures.
    previous = out / "whatif.json"
    results = {**(json.loads(previous.read_text()) if previous.exists() else {}), **results}
    (out / "whatif.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# What-if experiments (bench/whatif.py)", ""]
    for name, result in results.items():
        # Figures from before runs were labelled are bare lists of rows.
        rows = result["rows"] if isinstance(result, dict) else result
        keys = list(rows[0])
        lines += [f"## {name}", ""]
        lines += [f"Run {result['ran']}.", ""] if isinstance(result, dict) else []
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows] + [""]
    (out / "whatif.md").write_text("\n".join(lines))
    say("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
