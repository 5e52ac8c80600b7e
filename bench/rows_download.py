"""Rows 5 and 6: a large recording's download speed against curl, and the worker's memory meanwhile."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.context import Context
from bench.deploy import Deployment
from bench.procstat import RssSampler, status_kib
from bench.report import Check, RowResult
from bench.rows_pipeline import FOUR_PROCESSES, MIB, create_call, download_ms, media_url, send_completed, wait_file
from stack.ports import wait_for
from worker import layout
from worker.storage import TMP_DIR

WAN_MIB, WAN_MIB_S = 64, 32


def _curl(dep: Deployment, sid: str, durable: bool) -> float:
    """Seconds curl takes to fetch the media with basic auth.

    ``durable``: into a file on the volume's filesystem, then ``sync -d`` of
    it, the landing the worker guarantees (fsync before rename); otherwise
    into /dev/null, the bare transfer.
    """
    stack = dep.stack
    target = dep.recordings / TMP_DIR / f"curl-{sid}.mp3" if durable else Path("/dev/null")
    argv = ["curl", "-sS", "-o", str(target), "-u", f"{stack.account_sid}:{stack.auth_token}"]
    argv += ["-w", "%{http_code} %{size_download}", media_url(dep, sid)]
    target.parent.mkdir(exist_ok=True)
    started = time.perf_counter()
    try:
        code, size = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout.split()
        if durable:
            subprocess.run(["sync", "-d", str(target)], timeout=300, check=True)
        seconds = time.perf_counter() - started
    finally:
        if durable:
            target.unlink(missing_ok=True)
    if code != "200" or not int(size):
        raise RuntimeError(f"curl got HTTP {code} and {size} bytes")
    return seconds


def _forget(dep: Deployment, sid: str, call_sid: str) -> None:
    """Remove a big recording from the volume once measured (disk space)."""
    for owner, name in (
        (sid, f"{sid}.mp3"),
        (sid, f"{sid}.mp3.json"),
        (sid, f"{sid}.peaks.json"),
        (call_sid, f"{call_sid}.mp3"),
    ):
        layout.remove(dep.recordings, owner, name)


def _peaks_done(dep: Deployment, sid: str) -> bool:
    """True once the worker logged the recording's peaks done (or unavailable)."""
    logs = dep.worker_logs()
    return any(
        f"event=peaks.{end}" in line and sid in line for line in logs.splitlines() for end in ("done", "unavailable")
    )


def _pair(dep: Deployment, size: int, worker_first: bool, **knobs: int) -> dict[str, float]:
    """One recording fetched by curl (durable and bare) and by the worker (webhook through nginx).

    Every side starts with no dirty pages left by the one before (``sync``),
    so none pays for another's writeback.
    """
    recording = create_call(dep, size=size, **knobs)["recordings"][0]
    sid = recording["sid"]
    run: dict[str, float] = {}
    for side in ("worker", "curl") if worker_first else ("curl", "worker"):
        if side == "curl":
            os.sync()
            run["curl_s"] = _curl(dep, sid, durable=True)
            os.sync()
            run["curl_null_s"] = _curl(dep, sid, durable=False)
            continue
        os.sync()
        started = time.perf_counter()
        if send_completed(dep, recording) != 204:
            raise RuntimeError("the webhook was not answered 204")
        run["e2e_s"] = wait_file(dep, sid, 300, interval=0.005) - started
        run["worker_s"] = download_ms(dep, sid) / 1000
        # The recording's peaks follow in a task of their own: let them finish
        # before the next side, which would otherwise share the CPU with them.
        wait_for(lambda: _peaks_done(dep, sid), 300, f"peaks of {sid}")
    _forget(dep, sid, recording["call_sid"])
    return run


def row_download(ctx: Context, result: RowResult) -> None:
    """Row 5: worker download time (its download.done ms) vs curl of the same media URL."""
    budget, dep = ctx.budget, ctx.main()
    if not dep.workers:
        dep.set_workers(FOUR_PROCESSES)
    size = budget.download_mib * MIB
    runs = [_pair(dep, size, worker_first=rep % 2 == 1) for rep in range(budget.download_reps)]
    worker_s = statistics.median(r["worker_s"] for r in runs)
    curl_s = statistics.median(r["curl_s"] for r in runs)
    null_s = statistics.median(r["curl_null_s"] for r in runs)
    worker_mbs, curl_mbs, null_mbs = (size / MIB / s for s in (worker_s, curl_s, null_s))
    result.checks.append(
        Check(
            f"download {budget.download_mib} MiB: worker vs curl (both into a synced file)",
            f"{worker_mbs:,.0f} MiB/s ({worker_s:.2f} s)",
            f"curl -o + sync {curl_mbs:,.0f} MiB/s ({curl_s:.2f} s)",
            worker_mbs / curl_mbs,
            "≥ 0.9×",
            worker_mbs >= 0.9 * curl_mbs,
        )
    )
    result.checks.append(
        Check(
            f"download {budget.download_mib} MiB: worker vs curl into /dev/null (bare transfer)",
            f"{worker_mbs:,.0f} MiB/s",
            f"curl {null_mbs:,.0f} MiB/s ({null_s:.2f} s)",
            worker_mbs / null_mbs,
            "info",
            None,
        )
    )
    # The same at a WAN-like speed: what the worker adds is hidden behind the network.
    wan_size, wan_rate = WAN_MIB * MIB, WAN_MIB_S * MIB
    wan = _pair(dep, wan_size, worker_first=False, throughput=wan_rate)
    result.checks.append(
        Check(
            f"download {WAN_MIB} MiB at {WAN_MIB_S} MiB/s (WAN-like): worker vs curl",
            f"{WAN_MIB / wan['worker_s']:,.1f} MiB/s",
            f"curl {WAN_MIB / wan['curl_s']:,.1f} MiB/s",
            wan["curl_s"] / wan["worker_s"],
            "info (≥ 0.9×)",
            None,
        )
    )
    result.details = {"size_mib": budget.download_mib, "runs": runs, "worker_s": worker_s, "curl_s": curl_s, "wan": wan}
    result.notes += [
        f"{budget.download_reps} recording(s) of {budget.download_mib} MiB from the simulator (no throttling), "
        "worker and curl alternating who goes first. Worker time is the `ms=` of its `download.done` line "
        "(media GET to rename: stream to a temp file, sha256, fsync, rename, fsync of the folder). The anchor "
        "is `curl -o` into the volume's filesystem followed by `sync -d` of the file (both processes timed): "
        "the same bytes landing as durably as the worker's. Every side starts after a `sync`, so none pays "
        "for the writeback of the one before. The /dev/null line shows the transfer alone, which the disk "
        f"does not limit. Webhook → file median {statistics.median(r['e2e_s'] for r in runs):.2f} s.",
        f"Informational line: one {WAN_MIB} MiB recording served at {WAN_MIB_S} MiB/s by the simulator's "
        f"`throughput` knob; webhook → file {wan['e2e_s']:.2f} s.",
    ]


@dataclass(frozen=True)
class WorkerMemory:
    """A fresh one-process Celery worker's memory over one large recording."""

    pool: list[int]
    idle_kib: int  # the pool process before the recording
    sampled_kib: int  # its highest VmRSS, sampled every 10 ms
    hwm_kib: int  # its VmHWM afterwards
    main_peak_kib: int  # the consumer (main) process's highest VmRSS
    samples: int
    seconds: float  # webhook to done

    @property
    def peak_mib(self) -> float:
        return max(self.hwm_kib, self.sampled_kib) / 1024

    def check(self, what: str) -> Check:
        """The row's line: peak RSS against the idle pool process, under 100 MiB."""
        return Check(
            f"worker peak RSS, {what}",
            f"{self.peak_mib:.0f} MiB",
            f"idle pool process {self.idle_kib / 1024:.0f} MiB",
            self.peak_mib / (self.idle_kib / 1024),
            "< 100 MiB",
            self.peak_mib < 100,
        )

    def details(self, size_mib: int) -> dict:
        return {
            "size_mib": size_mib,
            "pool_pids": self.pool,
            "idle_rss_kib": self.idle_kib,
            "sampled_peak_rss_kib": self.sampled_kib,
            "vm_hwm_kib": self.hwm_kib,
            "main_process_peak_rss_kib": self.main_peak_kib,
            "samples": self.samples,
        }

    def method(self, done: str) -> str:
        """How the figure was taken, for the row's notes; ``done`` names the end of the work."""
        return (
            f"A fresh Celery worker with concurrency 1; its pool process's VmRSS sampled every 10 ms "
            f"({self.samples} samples, peak {self.sampled_kib / 1024:.0f} MiB) and its VmHWM read after the "
            f"{done} ({self.hwm_kib / 1024:.0f} MiB); the figure is the larger. Main (consumer) process peak "
            f"{self.main_peak_kib / 1024:.0f} MiB."
        )


def worker_memory(dep: Deployment, recording: dict, wait_done: Callable[[], object]) -> WorkerMemory:
    """Send ``recording``'s webhook to a fresh one-process worker and sample its memory until ``wait_done``."""
    dep.set_workers({"memworker": 1})  # a fresh worker: VmHWM then belongs to this recording alone
    main_pid = dep.stack.procs["memworker"].popen.pid
    pool = dep.pool_pids("memworker")
    if not pool:
        raise RuntimeError("the Celery worker has no pool process")
    idle_kib = max(status_kib(pid, "VmRSS") for pid in pool)
    sampler = RssSampler(lambda: [main_pid, *pool], interval=0.01)
    sampler.start()
    try:
        started = time.perf_counter()
        if send_completed(dep, recording) != 204:
            raise RuntimeError("the webhook was not answered 204")
        wait_done()
        seconds = time.perf_counter() - started
    finally:
        peaks = sampler.stop()
    return WorkerMemory(
        pool=pool,
        idle_kib=idle_kib,
        sampled_kib=max(peaks.get(pid, 0) for pid in pool),
        hwm_kib=max(status_kib(pid, "VmHWM") for pid in pool),
        main_peak_kib=peaks.get(main_pid, 0),
        samples=sampler.samples,
        seconds=seconds,
    )


def row_memory(ctx: Context, result: RowResult) -> None:
    """Row 6: peak RSS of the Celery pool process while it downloads a large recording."""
    budget, dep = ctx.budget, ctx.main()
    recording = create_call(dep, size=budget.memory_mib * MIB)["recordings"][0]
    memory = worker_memory(dep, recording, lambda: wait_file(dep, recording["sid"], 300, interval=0.01))
    _forget(dep, recording["sid"], recording["call_sid"])
    result.checks.append(memory.check(f"{budget.memory_mib} MiB download"))
    result.details = {**memory.details(budget.memory_mib), "webhook_to_file_s": round(memory.seconds, 2)}
    result.notes += [f"{memory.method('download')} Webhook → file {memory.seconds:.1f} s."]
