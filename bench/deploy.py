"""The stack under test, started on free ports through ``stack.Stack``.

Every product process (redis, simulator, gunicorn, nginx, Celery workers)
starts from its Procfile line, as in ``make run``; what differs from the test
suite's ``Stack.start_all()`` is what production differs in:

* Redis syncs its append-only file every second (the Procfile's default),
  not on every write as in the tests;
* the retry/timeout knobs the tests shorten are back at their defaults;
* gunicorn gets ``web/gunicorn.conf.py``'s own worker count;
* nginx runs the config ``Stack.render_nginx`` renders (the production
  arguments) plus bench-only ``server`` blocks (anchors) on their own ports,
  so anchors and the real thing share one nginx: the same processes,
  ``worker_processes``, sendfile, open_file_cache and access_log.

Only the anchors' own WSGI apps (``bench/anchor_apps.py``) start with an argv
of the bench's: they are not product processes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench import volume
from bench.procstat import children, tree
from stack.local import Proc, Stack
from stack.ports import free_ports
from worker.config import load_settings

PRODUCTION_KNOBS = {
    "REDIS_APPENDFSYNC": "everysec",
    "RETRY_BACKOFF_SECONDS": "2",
    "RETRY_BACKOFF_MAX_SECONDS": "300",
    "DOWNLOAD_READ_TIMEOUT": "30",
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
            alias {recordings_dir}/{static_dir}/;
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

    def __init__(self, base: Path, recordings_dir: Path | None = None, settings: dict[str, str] | None = None) -> None:
        overrides = {**PRODUCTION_KNOBS, **(settings or {})}  # settings: e.g. bucket mode's STORAGE_URL and keys
        if recordings_dir is not None:
            overrides["RECORDINGS_DIR"] = str(recordings_dir)
        self.stack = Stack(base, overrides=overrides)
        self.recordings = recordings_dir or self.stack.recordings
        taken = set(self.stack.ports)
        ports = [port for port in free_ports(len(taken) + 5) if port not in taken][:5]
        self.static_port, self.seed_port, self.bare_port, self.seed_web_port, self.bare_web_port = ports
        self.workers: dict[str, int] = {}

    def use_volume(self, recordings_dir: Path, redis_url: str | None = None) -> None:
        """Point processes started from now on at another RECORDINGS_DIR (and its index's REDIS_URL)."""
        self.stack.overrides["RECORDINGS_DIR"] = str(recordings_dir)
        if redis_url:
            self.stack.overrides["REDIS_URL"] = redis_url
        self.recordings = recordings_dir

    def url(self, port: int) -> str:
        """http://127.0.0.1:port."""
        return f"http://127.0.0.1:{port}"

    def start(self, simulator: bool = True) -> Deployment:
        """redis, (simulator), gunicorn and nginx; Celery workers come later."""
        self.stack.start_redis()
        if simulator:
            self.stack.start_simulator()
        self.stack.start_web(workers=None)
        self.start_nginx()
        return self

    def start_nginx(self) -> Proc:
        """The project's nginx, its rendered config plus the anchor servers."""
        proc = self.stack.start_nginx(edit=self.add_anchors)
        for port in (self.static_port, self.seed_port, self.bare_port):
            proc.wait_port(port, timeout=30)
        return proc

    def add_anchors(self, config: str) -> str:
        """``config`` with the anchor servers appended to its ``http {}`` block."""
        cut = config.rstrip().rfind("}")  # the end of http {}
        anchors = ANCHORS.format(
            static_port=self.static_port,
            seed_port=self.seed_port,
            bare_port=self.bare_port,
            seed_web_port=self.seed_web_port,
            bare_web_port=self.bare_web_port,
            recordings_dir=load_settings(self.stack.env()).recordings_dir,
            static_dir=volume.STATIC_DIR,
            hit_logs="\n            ".join(hit_location_logs(config)),
            proxy=_PROXY,
        )
        return config[:cut] + anchors + config[cut:]

    def start_web(self, name: str, port: int) -> Proc:
        """Another gunicorn of the service (the Procfile's ``web``) on ``port``, as ``name``."""
        return self.stack.start("web", name=name, WEB_PORT=str(port)).wait_port(port, timeout=30)

    def start_anchor(self, name: str, app: str, port: int) -> Proc:
        """A bench-only WSGI app under gunicorn with web/gunicorn.conf.py (worker count included), on ``port``."""
        argv = [sys.executable, "-m", "gunicorn", "--config", "web/gunicorn.conf.py"]
        argv += ["--bind", f"127.0.0.1:{port}", app]
        return self.stack.spawn(name, argv).wait_port(port, timeout=30)

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
