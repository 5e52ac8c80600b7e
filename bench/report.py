"""Results: one table line per check, the machine it ran on, Markdown and JSON."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Check:
    """One line of the table: a figure measured against its anchor in the same run."""

    measurement: str
    figure: str
    anchor: str
    ratio: float | None
    target: str
    passed: bool | None  # None: informational, or the row could not run

    def __post_init__(self) -> None:
        if self.ratio is not None and not math.isfinite(self.ratio):
            self.ratio = None  # a zero or infinite anchor: the figures say why


@dataclass
class RowResult:
    """What one bench row measured: table lines, absolute numbers, notes."""

    number: int
    name: str
    title: str
    checks: list[Check] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def _version(argv: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else (done.stdout + done.stderr).strip()[:80]


def machine_info() -> dict:
    """CPU, cores, memory, kernel and the versions of every server in the bench."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as handle:
        mem_kib = int(handle.readline().split()[1])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "nginx": _version(["nginx", "-v"], r"nginx/(\S+)"),
        "redis": _version(["redis-server", "--version"], r"v=(\S+)"),
        "python": platform.python_version(),
        "wrk": _version(["wrk", "--version"], r"wrk (\S+)"),
        "curl": _version(["curl", "--version"], r"curl (\S+)"),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def load_snapshot() -> dict:
    """Load average and CPU pressure now: other work on the machine skews figures."""
    snapshot = {"loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        snapshot["cpu_pressure_avg10"] = float(some.split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return snapshot


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "info"}[passed]


def table_lines(rows: list[RowResult]) -> list[str]:
    """The Markdown table of every check."""
    lines = [
        "| # | measurement | figure | anchor | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: r.number):
        if row.error:
            lines.append(f"| {row.number} | {row.title} | error: {row.error[:100]} | | | | FAIL |")
        for check in row.checks:
            ratio = "" if check.ratio is None else f"{check.ratio:.2f}×"
            lines.append(
                f"| {row.number} | {check.measurement} | {check.figure} | {check.anchor} | {ratio} "
                f"| {check.target} | {_mark(check.passed)} |"
            )
    return lines


def markdown(rows: list[RowResult], meta: dict) -> str:
    """The whole report: machine, table, notes per row."""
    machine = meta["machine"]
    out = [
        "# Recording Cache bench",
        "",
        f"Run {machine['date']} ({meta['mode']}, {meta['total_seconds']:.0f} s) on {machine['cpu_model']}, "
        f"{machine['cores']} cores, {machine['memory_gib']} GiB, kernel {machine['kernel']}; nginx "
        f"{machine['nginx']}, redis {machine['redis']}, Python {machine['python']}, wrk {machine['wrk']}, "
        f"curl {machine['curl']}. Load average at start: {' '.join(machine['loadavg_at_start'])}.",
        "",
        *table_lines(rows),
        "",
    ]
    for row in sorted(rows, key=lambda r: r.number):
        if row.notes:
            out += [f"**{row.number}. {row.title}** ({row.seconds:.0f} s)", ""]
            out += [f"- {note}" for note in row.notes] + [""]
    out.append("Absolute numbers for every row are in the JSON file of the same name.")
    return "\n".join(out) + "\n"


def write_results(directory: Path, stem: str, rows: list[RowResult], meta: dict) -> tuple[Path, Path]:
    """Write ``stem.md`` and ``stem.json`` atomically (``*.tmp`` then rename)."""
    (directory / stem).parent.mkdir(parents=True, exist_ok=True)  # a stem may name a folder or be absolute
    payload = {**meta, "rows": [asdict(row) for row in sorted(rows, key=lambda r: r.number)]}
    paths = []
    for suffix, text in ((".md", markdown(rows, meta)), (".json", json.dumps(payload, indent=2, default=str) + "\n")):
        path = directory / f"{stem}{suffix}"
        tmp = directory / f"{stem}{suffix}.tmp"
        tmp.write_text(text)
        tmp.replace(path)
        paths.append(path)
    return paths[0], paths[1]


def say(line: str) -> None:
    """A progress line on stdout, flushed at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
