"""One deployment on free loopback ports under a folder: the tests' and the bench's stack.

Each process is a Procfile line (``stack.procfile``) run in its own process
group with its log in the stack's folder; a test adds only arguments and
environment (``--without-mingle``, a worker's name), never a command of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import procfile
from .ports import free_ports, port_open, wait_for


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

    def wait_port(self, port: int, timeout: float = 20) -> Proc:
        """Return once the process listens on ``port``; fail with its log if it exits or times out."""
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not listen on {port}:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        return self


@dataclass
class Stack:
    """One Recording Cache deployment under ``base`` with its own ports.

    ``overrides`` are environment variables on top of the test defaults
    below (shortened retries and lock TTL, a fsync-always Redis).
    """

    base: Path
    overrides: dict[str, str] = field(default_factory=dict)
    demo: bool = False
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.recordings = Path(self.overrides.get("RECORDINGS_DIR") or self.base / "recordings")
        self.recordings.mkdir(exist_ok=True)
        self.runtime = self.base / "run"
        self.runtime.mkdir(exist_ok=True)
        self.metrics_dir = self.base / "metrics"
        self.metrics_dir.mkdir(exist_ok=True)
        self.http_port, self.web_port, self.redis_port, self.sim_port, self.flower_port = free_ports(5)
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.api_token = secrets.token_urlsafe(16)
        self.signing_key = secrets.token_urlsafe(24)
        if self.demo:
            self._seed_demo_secrets()

    def sibling(self, base: Path, **overrides: str) -> Stack:
        """Another host of this deployment: its own nginx, gunicorn, workers, edge cache and
        ports; this stack's Redis, Twilio simulator, account, keys and bucket settings."""
        host = Stack(base, overrides={**self.overrides, "EDGE_CACHE_DIR": str(base / "edge-cache"), **overrides})
        host.redis_port, host.sim_port = self.redis_port, self.sim_port
        host.account_sid, host.auth_token = self.account_sid, self.auth_token
        host.api_token, host.signing_key = self.api_token, self.signing_key
        return host

    def _seed_demo_secrets(self) -> None:
        # Demo mode reads its secrets from the volume; seed them so the test
        # knows them and the simulator shares the account.
        state = self.recordings / ".state"
        state.mkdir(exist_ok=True)
        secrets_file = {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "API_TOKEN": self.api_token,
            "PLAYBACK_SIGNING_KEY": self.signing_key,
            "FLOWER_BASIC_AUTH": "admin:" + self.api_token,
        }
        (state / "demo-secrets.json").write_text(json.dumps(secrets_file))

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
            # The virtualenv's python first; nginx and redis-server live in sbin on Debian.
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", ""), "/usr/sbin", "/sbin"]),
            PYTHONUNBUFFERED="1",
            RUNTIME_DIR=str(self.runtime),
            TWILIO_ACCOUNT_SID=self.account_sid,
            TWILIO_AUTH_TOKEN=self.auth_token,
            SIM_ACCOUNT_SID=self.account_sid,
            SIM_AUTH_TOKEN=self.auth_token,
            TWILIO_API_BASE_URL=self.sim_url,
            PUBLIC_BASE_URL=self.http_url,
            REDIS_URL=self.redis_url,
            REDIS_PORT=str(self.redis_port),
            REDIS_DIR=str(self.base / "redis"),
            REDIS_APPENDFSYNC="always",
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
        )
        if self.demo:
            for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "API_TOKEN", "PLAYBACK_SIGNING_KEY"):
                env.pop(name)
        env.update(self.overrides)
        return env

    def spawn(self, name: str, argv: list[str], **extra_env: str) -> Proc:
        """Start ``argv`` in its own process group, logging to ``base/name.log``."""
        log_path = self.base / f"{name}.log"
        with open(log_path, "ab") as handle:
            popen = subprocess.Popen(
                argv,
                cwd=procfile.ROOT,
                env={**self.env(), **extra_env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.procs[name] = proc
        return proc

    def start(self, process: str, *extra_args: str, name: str | None = None, **extra_env: str) -> Proc:
        """Run one Procfile line (``extra_args`` appended) as ``name``."""
        return self.spawn(name or process, procfile.shell_argv(process, extra_args), **extra_env)

    def start_redis(self) -> Proc:
        """redis-server with an append-only file, so a restart keeps the queue."""
        (self.base / "redis").mkdir(exist_ok=True)
        return self.start("redis").wait_port(self.redis_port)

    def start_simulator(self) -> Proc:
        """The Twilio simulator on its own port."""
        return self.start("simulator").wait_port(self.sim_port)

    def start_worker(self, name: str = "worker", concurrency: int = 2, timeout: float = 30) -> Proc:
        """A Celery worker (prefork pool) consuming the recordings queue."""
        proc = self.start(
            "worker",
            "--without-mingle",
            name=name,
            WORKER_NAME=f"{name}-{self.http_port}",
            WORKER_CONCURRENCY=str(concurrency),
        )
        wait_for(lambda: " ready." in proc.log() or (not proc.alive() and _raise(proc)), timeout, f"{name} ready")
        return proc

    def start_flower(self, timeout: float = 30) -> Proc:
        """Flower on loopback, behind its basic auth."""
        return self.start("flower").wait_port(self.flower_port, timeout)

    def start_web(self, workers: int | None = 2) -> Proc:
        """gunicorn serving the Flask app on loopback (``workers=None``: gunicorn.conf.py's count)."""
        extra = ("--workers", str(workers)) if workers else ()
        return self.start("web", *extra).wait_port(self.web_port)

    def render_nginx(self, edit: Callable[[str], str] | None = None) -> Path:
        """Render nginx.conf from the stack's settings, then apply ``edit`` (the bench adds servers)."""
        from nginx.render import render
        from worker.config import load_settings

        path = render(load_settings(self.env()), self.runtime)
        if edit is not None:
            path.write_text(edit(path.read_text()))
        return path

    def start_nginx(self, edit: Callable[[str], str] | None = None) -> Proc:
        """nginx with the config rendered from the stack's settings."""
        self.render_nginx(edit)
        return self.start("nginx").wait_port(self.http_port)

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

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

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
