"""Run the Procfile's processes in the foreground with honcho's Manager, say once when all answer.

``make run`` used to exec ``honcho start``, which exits 130 on Ctrl-C and
143 on SIGTERM even after stopping everything cleanly. Running honcho's
Manager in this process lets a stop asked for by a signal end with status 0
(a process that died on its own still ends it non-zero), and a thread
prints one ready line once every process with an interface answers.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

import requests
from honcho.environ import expand_processes, parse_procfile
from honcho.manager import SIGNALS, Manager
from honcho.printer import Printer

from worker.config import Settings

from .procfile import PROCFILE, ROOT

log = logging.getLogger("recording_cache.run")

READY_TIMEOUT_SECONDS = 120
STOPPED_BY_SIGNAL = {entry["rc"] for entry in SIGNALS.values()}  # 130 (SIGINT), 143 (SIGTERM)


def probes(settings: Settings, processes: list[str]) -> dict[str, Callable[[], bool]]:
    """How to ask each process whether it answers (beat has nothing to ask: it runs or it exits)."""

    def http(url: str) -> Callable[[], bool]:
        return lambda: requests.get(url, timeout=2).status_code < 500

    def worker() -> bool:
        from worker.celery_app import create_celery

        return bool(create_celery(settings).control.ping(timeout=1.0))

    found = {
        "nginx": http(f"http://127.0.0.1:{settings.http_port}/healthz"),
        "web": http(f"http://127.0.0.1:{settings.web_port}/healthz"),
        "flower": http(f"http://127.0.0.1:{settings.flower_port}/"),  # 401 without its password: it answers
        "simulator": http(f"http://127.0.0.1:{settings.simulator_port}/_sim/stats"),
        "worker": worker,
    }
    return {name: probe for name, probe in found.items() if name in processes}


def announce_when_ready(settings: Settings, processes: list[str], stopping: threading.Event) -> None:
    """Print one ready line once every probe answers (or one line naming what never did)."""
    waiting = probes(settings, processes)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while waiting and time.monotonic() < deadline and not stopping.is_set():
        for name, probe in list(waiting.items()):
            try:
                if probe():
                    del waiting[name]
            except Exception:  # not up yet: refused, timed out, no worker replied
                pass
        stopping.wait(0.5)
    if stopping.is_set():
        return
    if waiting:
        log.warning("run.not_ready", extra={"waiting_for": ",".join(sorted(waiting)), "seconds": READY_TIMEOUT_SECONDS})
        return
    page = f"http://127.0.0.1:{settings.http_port}/"
    sys.stdout.write(f"recording-cache: ready: {', '.join(processes)} running; {page}\n")
    sys.stdout.flush()


def run(settings: Settings, processes: list[str], env: dict[str, str]) -> int:
    """Run ``processes`` until a signal or a process's exit; 0 after a stop asked for by Ctrl-C or SIGTERM."""
    procfile = parse_procfile(PROCFILE.read_text())
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty(), prefix=True))
    chosen = {name: procfile.processes[name] for name in processes}
    for process in expand_processes(chosen, env={}, quiet=[], port=5000):
        manager.add_process(process.name, process.cmd, env={**env, **process.env}, cwd=str(ROOT))
    stopping = threading.Event()
    ready = threading.Thread(target=announce_when_ready, args=(settings, processes, stopping), daemon=True)
    ready.start()
    try:
        manager.loop()
    finally:
        stopping.set()
    if manager.returncode in STOPPED_BY_SIGNAL:
        log.info("run.stopped", extra={"signal": "SIGINT" if manager.returncode == 130 else "SIGTERM"})
        return 0
    return manager.returncode or 0
