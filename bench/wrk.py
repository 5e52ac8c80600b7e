"""Run wrk with a Lua script and read back its numbers and the servers' CPU.

The Lua scripts (``bench/lua/``) print one ``BENCHJSON {...}`` line from
wrk's ``done()`` hook; it carries requests, duration, error counts, latency
percentiles and (for webhooks) the per-status counts.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.procstat import CpuMeter, system_busy_seconds

LUA_DIR = Path(__file__).resolve().parent / "lua"
WRK_THREADS = 2


@dataclass
class WrkRun:
    """One or more wrk runs against the same URL, summed."""

    requests: int = 0
    seconds: float = 0.0
    bytes: int = 0
    socket_errors: int = 0
    non_2xx_3xx: int = 0
    server_cpu_s: float = 0.0
    wrk_cpu_s: float = 0.0
    outside_cpu_s: float = 0.0  # busy CPU of everything else on the machine meanwhile
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    runs: int = 0

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_req(self) -> float:
        """Server CPU microseconds per completed request."""
        return self.server_cpu_s * 1e6 / self.requests if self.requests else float("inf")

    def add(self, other: WrkRun) -> None:
        """Fold another run in; latency percentiles keep the worst of the runs."""
        self.requests += other.requests
        self.seconds += other.seconds
        self.bytes += other.bytes
        self.socket_errors += other.socket_errors
        self.non_2xx_3xx += other.non_2xx_3xx
        self.server_cpu_s += other.server_cpu_s
        self.wrk_cpu_s += other.wrk_cpu_s
        self.outside_cpu_s += other.outside_cpu_s
        for name in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            setattr(self, name, max(getattr(self, name), getattr(other, name)))
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.runs += other.runs

    def as_dict(self) -> dict:
        """JSON-ready figures, derived ones included."""
        data = asdict(self)
        cpu = self.cpu_us_per_req
        data.update(rps=round(self.rps, 1), cpu_us_per_req=round(cpu, 2) if self.requests else None)
        for name in ("seconds", "server_cpu_s", "wrk_cpu_s", "outside_cpu_s"):
            data[name] = round(data[name], 3)
        return data


def wrk_binary() -> str:
    """Path of wrk; a clear error when it is missing."""
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return path


def run_wrk(
    url: str,
    script: str,
    script_args: Sequence[str],
    seconds: float,
    connections: int = 64,
    server_pids: Callable[[], list[int]] = list,
    timeout_s: int = 5,
) -> WrkRun:
    """One wrk run; server CPU is measured over the processes ``server_pids()`` names."""
    argv = [
        wrk_binary(),
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(LUA_DIR / script),
        url,
        "--",
        *script_args,
    ]
    meter = CpuMeter(server_pids())
    before_children, before_busy = resource.getrusage(resource.RUSAGE_CHILDREN), system_busy_seconds()
    meter.start()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    cpu = meter.stop()
    after_children, busy = resource.getrusage(resource.RUSAGE_CHILDREN), system_busy_seconds() - before_busy
    wrk_cpu = (after_children.ru_utime + after_children.ru_stime) - (
        before_children.ru_utime + before_children.ru_stime
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCHJSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    raw = json.loads(lines[-1].removeprefix("BENCHJSON "))
    return WrkRun(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        bytes=raw["bytes"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        non_2xx_3xx=raw["status"],
        server_cpu_s=cpu,
        wrk_cpu_s=wrk_cpu,
        outside_cpu_s=max(0.0, busy - cpu - wrk_cpu),
        p50_ms=raw["lat_p50_us"] / 1000,
        p90_ms=raw["lat_p90_us"] / 1000,
        p99_ms=raw["lat_p99_us"] / 1000,
        max_ms=raw["lat_max_us"] / 1000,
        statuses={str(k): int(v) for k, v in raw["statuses"].items()},
        runs=1,
    )


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    """Write a data file for a Lua script, one item per line."""
    path.write_text("\n".join(lines) + "\n")
    return path
