"""`make run` as a newcomer runs it (``python -m stack.run``, demo mode): one ready line, loopback only,
and a clean stop with status 0 on Ctrl-C or SIGTERM, nothing left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from stack.ports import free_ports
from stack.procfile import ROOT

pytestmark = pytest.mark.e2e


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _outside_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # no packet is sent: only the route is chosen
        except OSError:
            return None
        address = udp.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_make_run_says_ready_once_binds_loopback_and_stops_cleanly(tmp_path, stop):
    http, web, flower, sim, redis_port = free_ports(5)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "AWS_", "STORAGE_"))}
    env.update(
        ENV_FILE=str(tmp_path / "no.env"),
        RUNTIME_DIR=str(tmp_path / "run"),
        RECORDINGS_DIR=str(tmp_path / "recordings"),
        HTTP_PORT=str(http),
        WEB_PORT=str(web),
        FLOWER_PORT=str(flower),
        SIMULATOR_PORT=str(sim),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",  # nothing answers there: it starts its own
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the signal goes to stack.run alone, as from a supervisor
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("recording-cache: ready:" in line for line in lines):
            assert proc.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "no ready line:\n" + "".join(lines)[-3000:]
            time.sleep(0.2)
        assert requests.get(f"http://127.0.0.1:{http}/", timeout=5).status_code == 200  # the demo page
        outside = _outside_address()
        if outside:  # demo mode: the page and its signed URLs stay on this machine
            with socket.socket() as probe:
                probe.settimeout(1)
                assert probe.connect_ex((outside, http)) != 0
        proc.send_signal(stop)
        assert proc.wait(60) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    reader.join(5)
    proc.stdout.close()
    assert sum("recording-cache: ready:" in line for line in lines) == 1
    deadline = time.monotonic() + 10
    while any(_listening(port) for port in (http, web, flower, sim, redis_port)):
        assert time.monotonic() < deadline, "a process still listens after the stop"
        time.sleep(0.2)
