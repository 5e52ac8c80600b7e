"""CPU time and memory of process trees, read from /proc.

Server CPU per request is the utime+stime delta of every process of a server
(nginx master and workers, gunicorn arbiter and workers) over a load run,
divided by the requests the load generator completed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        text = handle.read()
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc; works without CONFIG_PROC_CHILDREN)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:
                found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    result, todo = [], [pid]
    while todo:
        current = todo.pop()
        result.append(current)
        todo.extend(children(current))
    return result


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """utime+stime in seconds of each process that still exists."""
    seconds = {}
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


class CpuMeter:
    """CPU seconds a fixed set of processes used between ``start()`` and ``stop()``."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = list(pids)
        self._before: dict[int, float] = {}
        self.seconds = 0.0

    def start(self) -> None:
        """Take the first reading."""
        self._before = cpu_seconds(self.pids)

    def stop(self) -> float:
        """Take the second reading; return the CPU seconds used in between."""
        after = cpu_seconds(self.pids)
        self.seconds = sum(after[pid] - self._before[pid] for pid in after if pid in self._before)
        return self.seconds


def system_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), to spot outside load."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    guest = sum(values[8:10]) if len(values) > 9 else 0  # already counted in user/nice
    return (sum(values) - idle - guest) / CLOCK_TICKS


def wait_quiet(max_wait: float, threshold_cores: float = 0.3, window: float = 1.0) -> dict:
    """Wait (at most ``max_wait`` s) for the machine's busy CPU to drop below ``threshold_cores``.

    Other work on a small machine skews every figure; this does not stop it,
    but starts a row in a calm moment when there is one, and says how busy it was.
    """
    started = time.monotonic()
    while True:
        before = system_busy_seconds()
        time.sleep(window)
        cores = (system_busy_seconds() - before) / window
        waited = time.monotonic() - started
        if cores < threshold_cores or waited >= max_wait:
            return {"busy_cores": round(cores, 2), "waited_s": round(waited, 1)}


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM, ...); 0 if gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS of the processes ``pids()`` names every ``interval`` seconds."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.peak_kib: dict[int, int] = {}
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until ``stop()``."""
        while not self._stop_event.is_set():
            for pid in self.pids():
                self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), status_kib(pid, "VmRSS"))
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> dict[int, int]:
        """Stop sampling; return the peak VmRSS (KiB) seen per pid."""
        self._stop_event.set()
        self.join(5)
        return self.peak_kib
