"""The stack under test, started on free ports through ``tests.stack.Stack``.

Differences from ``Stack.start_all()``, each to match production (Procfile,
``scripts/run.py``) rather than the test suite:

* redis-server runs with the Procfile's flags (``--appendonly yes``, default
  ``appendfsync everysec``), not the tests' ``appendfsync always``;
* the retry/timeout knobs the tests shorten are back at their defaults;
* gunicorn gets ``web/gunicorn.conf.py``'s own worker count;
* nginx runs the project's template rendered by ``nginx.render.render`` with
  the production arguments, plus bench-only ``server`` blocks (anchors) on
  their own ports, so anchors and the real thing share one nginx: the same
  processes, ``worker_processes``, sendfile, open_file_cache and access_log.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.procstat import children, tree
from nginx.render import render
from tests.stack import Proc, Stack, free_ports, port_open
from worker.config import load_settings

# web/gunicorn.conf.py: workers = min(4, multiprocessing.cpu_count() * 2)
WEB_WORKERS = min(4, (os.cpu_count() or 1) * 2)
PRODUCTION_KNOBS = {
    "RETRY_BACKOFF_SECONDS": "2",
    "RETRY_BACKOFF_MAX_SECONDS": "300",
    "DOWNLOAD_READ_TIMEOUT": "30",
    "LOCK_TTL_SECONDS": "60",
}
_PROXY = """proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;"""
ANCHORS = """
    # ---- bench-only anchors (bench/deploy.py); same http-level settings as above ----
    server {{  # plain static files: no secure_link, no regex, no add_header; the hit location's access_log lines
        listen {static_port} reuseport;
        location /recordings/ {{
            alias {recordings_dir}/;
            {hit_logs}
        }}
        location / {{ return 404; }}
    }}
    upstream bench_seed {{
        server 127.0.0.1:{seed_web_port};
        keepalive 64;
    }}
    server {{  # the seed pattern: playback proxied to Flask send_file under gunicorn
        listen {seed_port} reuseport;
        {proxy}
        location /recordings/ {{ proxy_pass http://bench_seed; }}
        location / {{ return 404; }}
    }}
    upstream bench_bare {{
        server 127.0.0.1:{bare_web_port};
        keepalive 64;
    }}
    server {{  # a bare Flask 204 app under the same gunicorn settings
        listen {bare_port} reuseport;
        client_max_body_size 64k;
        {proxy}
        location /twilio/ {{ proxy_pass http://bench_bare; }}
        location / {{ return 404; }}
    }}
"""


def hit_location_logs(config: str) -> list[str]:
    """The ``access_log`` lines of the rendered config's hit location (the one with ``secure_link``)."""
    start = config.find("secure_link_md5")
    if start < 0:
        return []
    block = config[start : config.find("\n        }", start)]
    return re.findall(r"^\s*(access_log [^;]+;)", block, re.MULTILINE)


class Deployment:
    """One Stack plus the bench's anchor ports and worker bookkeeping."""

    def __init__(self, base: Path, recordings_dir: Path | None = None) -> None:
        overrides = dict(PRODUCTION_KNOBS)
        if recordings_dir is not None:
            overrides["RECORDINGS_DIR"] = str(recordings_dir)
        self.stack = Stack(base, overrides=overrides)
        self.recordings = recordings_dir or self.stack.recordings
        taken = set(self.stack.ports)
        ports = [port for port in free_ports(len(taken) + 5) if port not in taken][:5]
        self.static_port, self.seed_port, self.bare_port, self.seed_web_port, self.bare_web_port = ports
        self.workers: dict[str, int] = {}
        self.nginx_edit: Callable[[str], str] | None = None  # what-if experiments only

    def use_volume(self, recordings_dir: Path) -> None:
        """Point processes started from now on at another RECORDINGS_DIR."""
        self.stack.overrides["RECORDINGS_DIR"] = str(recordings_dir)
        self.recordings = recordings_dir

    def url(self, port: int) -> str:
        """http://127.0.0.1:port."""
        return f"http://127.0.0.1:{port}"

    def start(self, simulator: bool = True) -> Deployment:
        """redis, (simulator), gunicorn and nginx; Celery workers come later."""
        self.start_redis()
        if simulator:
            self.stack.start_simulator()
        self.stack.start_web(workers=WEB_WORKERS)
        self.start_nginx()
        return self

    def start_redis(self) -> Proc:
        """redis-server with the Procfile's persistence flags."""
        data = self.stack.base / "redis"
        data.mkdir(exist_ok=True)
        argv = [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1"]
        argv += ["--port", str(self.stack.redis_port), "--dir", str(data), "--appendonly", "yes", "--save", ""]
        return self._wait(self.stack.spawn("redis", argv), self.stack.redis_port)

    def start_nginx(self) -> Proc:
        """The project's nginx config (production render arguments) plus the anchor servers."""
        settings = load_settings(self.stack.env())
        path = render(settings, self.stack.runtime)
        text = path.read_text()
        cut = text.rstrip().rfind("}")  # the end of http {}
        anchors = ANCHORS.format(
            static_port=self.static_port,
            seed_port=self.seed_port,
            bare_port=self.bare_port,
            seed_web_port=self.seed_web_port,
            bare_web_port=self.bare_web_port,
            recordings_dir=settings.recordings_dir,
            hit_logs="\n            ".join(hit_location_logs(text)),
            proxy=_PROXY,
        )
        text = text[:cut] + anchors + text[cut:]
        if self.nginx_edit is not None:
            text = self.nginx_edit(text)
        path.write_text(text)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = self.stack.spawn(
            "nginx", [nginx, "-p", str(self.stack.runtime), "-c", "nginx.conf", "-g", "daemon off;"]
        )
        for port in (self.stack.http_port, self.static_port, self.seed_port, self.bare_port):
            self._wait(proc, port)
        return proc

    def start_anchor(self, name: str, app: str, port: int) -> Proc:
        """A bench-only WSGI app under gunicorn with web/gunicorn.conf.py, bound to ``port``."""
        argv = [sys.executable, "-m", "gunicorn", "--config", "web/gunicorn.conf.py"]
        argv += ["--workers", str(WEB_WORKERS), "--bind", f"127.0.0.1:{port}", app]
        return self._wait(self.stack.spawn(name, argv), port)

    def stop(self, name: str) -> None:
        """Stop one process of the stack and forget it."""
        proc = self.stack.procs.pop(name, None)
        if proc is not None:
            proc.stop()
        self.workers.pop(name, None)

    def set_workers(self, spec: dict[str, int]) -> None:
        """Run exactly these Celery workers (name -> concurrency), restarting what differs."""
        for name in [n for n, c in self.workers.items() if spec.get(n) != c]:
            self.stop(name)
        for name, concurrency in spec.items():
            if name not in self.workers:
                self.stack.start_worker(name, concurrency)
                self.workers[name] = concurrency

    def pids(self, name: str) -> list[int]:
        """The process tree of one named process (e.g. nginx master and workers)."""
        proc = self.stack.procs.get(name)
        return tree(proc.popen.pid) if proc and proc.alive() else []

    def pool_pids(self, name: str) -> list[int]:
        """The prefork pool processes of a Celery worker."""
        return children(self.stack.procs[name].popen.pid)

    def worker_logs(self) -> str:
        """Everything the Celery workers logged so far."""
        return "".join(self.stack.procs[name].log() for name in self.workers if name in self.stack.procs)

    def close(self) -> None:
        """Stop every process; always safe to call."""
        self.stack.stop_all()
        self.stack.procs.clear()
        self.workers.clear()

    @staticmethod
    def _wait(proc: Proc, port: int, timeout: float = 30) -> Proc:
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name} did not listen on {port}:\n{proc.log()[-3000:]}")
            time.sleep(0.02)
        return proc
