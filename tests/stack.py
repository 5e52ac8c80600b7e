"""Start the real processes of Recording Cache on free ports, and stop them.

Used by the integration tests and by ``make bench``: redis-server, the Twilio
simulator, Celery workers, gunicorn and nginx, each in its own process group
with its log in the stack's folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nothing listens on right now.

    Every socket stays bound until all are chosen: ports picked one at a time
    and released in between can come back twice (it happened: nginx and the
    simulator were handed the same port).
    """
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # not up yet: connection refused and the like
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    """A started process, its log file and how to stop it."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps."""
        if self.alive():
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal(signal.SIGKILL)
        self.popen.wait(5)


@dataclass
class Stack:
    """One Recording Cache deployment under ``base`` with its own ports."""

    base: Path
    overrides: dict[str, str] = field(default_factory=dict)
    demo: bool = False
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.recordings = Path(self.overrides.get("RECORDINGS_DIR") or self.base / "recordings")
        self.recordings.mkdir(exist_ok=True)
        self.runtime = self.base / "run"
        self.metrics_dir = self.base / "metrics"
        self.metrics_dir.mkdir(exist_ok=True)
        self.http_port, self.web_port, self.redis_port, self.sim_port, self.flower_port = free_ports(5)
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.api_token = secrets.token_urlsafe(16)
        self.signing_key = secrets.token_urlsafe(24)
        if self.demo:
            # Demo mode reads its secrets from the volume; seed them so the
            # test knows them and the simulator shares the account.
            state = self.recordings / ".state"
            state.mkdir(exist_ok=True)
            (state / "demo-secrets.json").write_text(
                json.dumps(
                    {
                        "TWILIO_ACCOUNT_SID": self.account_sid,
                        "TWILIO_AUTH_TOKEN": self.auth_token,
                        "API_TOKEN": self.api_token,
                        "PLAYBACK_SIGNING_KEY": self.signing_key,
                        "FLOWER_BASIC_AUTH": "admin:" + self.api_token,
                    }
                )
            )

    @property
    def http_url(self) -> str:
        """nginx, the public entry point."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def sim_url(self) -> str:
        """The Twilio simulator's origin."""
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def redis_url(self) -> str:
        """The stack's own redis-server."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the stack listens on."""
        return (self.http_port, self.web_port, self.redis_port, self.sim_port, self.flower_port)

    def env(self) -> dict[str, str]:
        """The environment every process of the stack gets."""
        env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")}
        env.update(
            ENV_FILE=str(self.base / "no.env"),
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            TWILIO_ACCOUNT_SID=self.account_sid,
            TWILIO_AUTH_TOKEN=self.auth_token,
            TWILIO_API_BASE_URL=self.sim_url,
            PUBLIC_BASE_URL=self.http_url,
            REDIS_URL=self.redis_url,
            RECORDINGS_DIR=str(self.recordings),
            PLAYBACK_LOG=str(self.runtime / "playback.log"),
            HTTP_PORT=str(self.http_port),
            WEB_PORT=str(self.web_port),
            FLOWER_PORT=str(self.flower_port),
            SIMULATOR_PORT=str(self.sim_port),
            API_TOKEN=self.api_token,
            PLAYBACK_SIGNING_KEY=self.signing_key,
            FLOWER_BASIC_AUTH="admin:" + self.api_token,
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
            RETRY_BACKOFF_SECONDS="0.2",
            RETRY_BACKOFF_MAX_SECONDS="1",
            DOWNLOAD_READ_TIMEOUT="5",
            LOCK_TTL_SECONDS="10",
        )
        if self.demo:
            for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "API_TOKEN", "PLAYBACK_SIGNING_KEY"):
                env.pop(name)
        env.update(self.overrides)
        return env

    def spawn(self, name: str, argv: list[str]) -> Proc:
        """Start ``argv`` in its own process group, logging to ``base/name.log``."""
        log_path = self.base / f"{name}.log"
        handle = open(log_path, "ab")
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        handle.close()
        proc = Proc(name, popen, log_path)
        self.procs[name] = proc
        return proc

    def _wait_port(self, proc: Proc, port: int, timeout: float = 20) -> Proc:
        def up():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
            return port_open(port)

        deadline = time.monotonic() + timeout
        while not port_open(port):
            up()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name} did not listen on {port}:\n{proc.log()[-3000:]}")
            time.sleep(0.05)
        return proc

    def start_redis(self) -> Proc:
        """redis-server with an append-only file, so a restart keeps the queue."""
        data = self.base / "redis"
        data.mkdir(exist_ok=True)
        proc = self.spawn(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
        )
        return self._wait_port(proc, self.redis_port)

    def start_simulator(self) -> Proc:
        """The Twilio simulator on its own port."""
        proc = self.spawn(
            "simulator",
            [
                sys.executable,
                "-m",
                "simulator",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.sim_port),
                "--account-sid",
                self.account_sid,
                "--auth-token",
                self.auth_token,
            ],
        )
        return self._wait_port(proc, self.sim_port)

    def start_worker(self, name: str = "worker", concurrency: int = 2, timeout: float = 30) -> Proc:
        """A Celery worker (prefork pool) consuming the recordings queue."""
        proc = self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.celery_worker",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "-n",
                f"{name}-{self.http_port}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
        )
        wait_for(lambda: " ready." in proc.log() or (not proc.alive() and _raise(proc)), timeout, f"{name} ready")
        return proc

    def start_web(self, workers: int = 2) -> Proc:
        """gunicorn serving the Flask app on loopback."""
        proc = self.spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "web/gunicorn.conf.py",
                "--workers",
                str(workers),
                "web.wsgi:app",
            ],
        )
        return self._wait_port(proc, self.web_port)

    def start_nginx(self) -> Proc:
        """nginx with the config rendered from the stack's settings."""
        subprocess.run(
            [sys.executable, "-m", "nginx.render", str(self.runtime)],
            cwd=ROOT,
            env=self.env(),
            check=True,
            capture_output=True,
        )
        proc = self.spawn(
            "nginx",
            [
                shutil.which("nginx") or "/usr/sbin/nginx",
                "-p",
                str(self.runtime),
                "-c",
                "nginx.conf",
                "-g",
                "daemon off;",
            ],
        )
        return self._wait_port(proc, self.http_port)

    def start_all(self, workers: int = 1, concurrency: int = 2) -> Stack:
        """Everything a user's deployment runs."""
        self.start_redis()
        self.start_simulator()
        for index in range(workers):
            self.start_worker(f"worker{index}", concurrency)
        self.start_web()
        self.start_nginx()
        return self

    def stop_all(self) -> None:
        """Stop every process this stack started, last started first."""
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    # -- conveniences for tests -------------------------------------------------

    def sim(self, method: str, path: str, timeout: float = 10, **kwargs) -> requests.Response:
        """Call the simulator's control API."""
        response = requests.request(method, self.sim_url + path, timeout=timeout, **kwargs)
        response.raise_for_status()
        return response

    def media_gets(self, recording_sid: str, fmt: str = "mp3") -> int:
        """Media GETs the simulator received for one recording and format."""
        stats = self.sim("GET", "/_sim/stats").json()
        return stats["media_gets"].get(recording_sid, {}).get(fmt, 0)


def _raise(proc: Proc):
    raise RuntimeError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
