"""Who holds a download lock, written into the lock's token, so a dead holder is recognised at once.

A lock's TTL is the only proof of death another machine has. On the machine
the holder ran on, the kernel knows better: a token names the holder's boot,
PID namespace, PID and the PID's start time, and a process that reads the
same boot and namespace can tell in one ``/proc`` read that the holder is
gone (the PID is free, or reused by a process started later). Anywhere else
(another host, another container's namespace) the answer is "unknown" and
the lease must run out.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache
from pathlib import Path

_PROC = Path("/proc")


@lru_cache(maxsize=1)
def machine() -> str:
    """This boot and PID namespace: the scope in which a PID names one process.

    Empty where /proc does not say (another OS): no holder is ever judged dead there.
    """
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / "self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""
    return f"{boot}/{namespace.removeprefix('pid:[').removesuffix(']')}"


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return stat.rsplit(")", 1)[1].split()[19]


def token() -> str:
    """A fresh lock token naming this process: ``machine:pid:start:random``."""
    pid = os.getpid()
    return f"{machine()}:{pid}:{_started(pid) or 0}:{uuid.uuid4().hex}"


def _parts(holder: bytes | str | None) -> list[str] | None:
    """``[machine, pid, start, random]`` of a token of this module, else None."""
    if holder is None:
        return None
    text = holder.decode() if isinstance(holder, bytes) else holder
    parts = text.rsplit(":", 3)
    return parts if len(parts) == 4 else None


def is_dead(holder: bytes | str | None) -> bool:
    """True only when ``holder`` (a token) names a process of this machine that no longer runs.

    False when it is alive, of another machine, or not a token of this module
    (a lock taken by an older version): those wait for the TTL.
    """
    parts = _parts(holder)
    if parts is None or not machine() or parts[0] != machine() or not parts[1].isdigit():
        return False
    return _started(int(parts[1])) != parts[2]


def describe(holder: bytes | str | None) -> str:
    """The holder's PID for a log line (``pid@machine-prefix``), without its random part."""
    if holder is None:
        return "none"
    parts = _parts(holder)
    return f"{parts[1]}@{parts[0][:8]}" if parts else "unknown"
