"""Render nginx's config from Settings into a runtime folder.

``python -m nginx.render RUNTIME_DIR`` prints the path of the written config.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from worker.config import Settings
from worker.runtime import settings_or_exit

TEMPLATE = "nginx.conf.j2"
WORKER_CONNECTIONS = 4096


def descriptor_limit() -> int:
    """``worker_rlimit_nofile``: the hard limit (nginx cannot raise it), at most 65536."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)


def render(
    settings: Settings,
    runtime_dir: Path,
    access_log: str = "/dev/stdout",
    worker_processes: str = "auto",
    web_host: str = "127.0.0.1",
    flower_host: str = "127.0.0.1",
) -> Path:
    """Write ``nginx.conf`` (mode 0600: it holds the signing key) and its temp folders.

    ``web_host`` and ``flower_host`` are where gunicorn and Flower listen:
    loopback in `make run`, the services' names under compose.
    """
    runtime_dir = runtime_dir.resolve()
    nofile = descriptor_limit()
    settings.playback_log.parent.mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (runtime_dir / sub).mkdir(parents=True, exist_ok=True)
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent), undefined=StrictUndefined, keep_trailing_newline=True
    )
    text = env.get_template(TEMPLATE).render(
        run_as_root=os.geteuid() == 0,
        worker_processes=worker_processes,
        runtime_dir=runtime_dir,
        access_log=access_log,
        web_host=web_host,
        nofile=nofile,
        worker_connections=WORKER_CONNECTIONS,
        playback_log=settings.playback_log,
        flower_host=flower_host,
        flower_port=settings.flower_port,
        flower_url_prefix=settings.flower_url_prefix,
        web_port=settings.web_port,
        http_port=settings.http_port,
        simulator_port=settings.simulator_port,
        recordings_dir=settings.recordings_dir,
        signing_key=settings.playback_signing_key,
        demo=settings.demo,
    )
    path = runtime_dir / "nginx.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def main(argv: list[str]) -> int:
    """Render into the folder given as the only argument."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m nginx.render RUNTIME_DIR\n")
        return 2
    settings = settings_or_exit()
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.write(f"{render(settings, Path(argv[0]))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
