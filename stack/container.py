"""Container entrypoint of the app image: one process of the Procfile per container.

    python -m stack.container web | worker | beat | flower   run that Procfile line (extra arguments appended)
    python -m stack.container render-nginx DIR [WEB_HOST]    render nginx.conf for the nginx container into DIR
    python -m stack.container ANY OTHER COMMAND              run it unchanged (a shell, a one-off celery call)

The Procfile stays the one list of commands: `make run` (honcho) and the
containers run the same lines. Before a process starts, the settings are loaded
once, so a missing or malformed variable stops the container with the usual
one line, and the environment is completed the way stack/run.py completes it
for honcho (stack/run.py), plus what a container needs: listen on the container's own
interface (gunicorn, Flower) instead of loopback, since nginx and the host port
mapping reach them from outside the container.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from . import procfile

DEFAULT_RUNTIME_DIR = "/var/lib/recording-cache/run"
# Inside a container loopback is private to the process: bind the container's interfaces.
CONTAINER_BIND_HOST = "0.0.0.0"


def _has_bind(args: str) -> bool:
    return any(a in ("-b", "--bind") or a.startswith("--bind=") for a in shlex.split(args))


def process_environment(settings, process: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment ``process`` runs with: the container's, completed from ``settings``."""
    env = dict(environ)
    # The image sets RUNTIME_DIR; the fallback is its folder too, never ./run inside /app.
    env["RUNTIME_DIR"] = env.get("RUNTIME_DIR") or DEFAULT_RUNTIME_DIR
    env.update(procfile.settings_environment(settings))
    if process == "flower":
        env["FLOWER_ADDRESS"] = env.get("FLOWER_ADDRESS") or CONTAINER_BIND_HOST
    if process == "web":
        # web/gunicorn.conf.py binds 127.0.0.1:WEB_PORT; gunicorn lets
        # GUNICORN_CMD_ARGS override its config file.
        args = env.get("GUNICORN_CMD_ARGS", "").strip()
        if not _has_bind(args):
            args = f"{args} --bind {CONTAINER_BIND_HOST}:{settings.web_port}".strip()
        env["GUNICORN_CMD_ARGS"] = args
    return env


def prepare_runtime(env: Mapping[str, str]) -> None:
    """Create the runtime folder; start the metrics folder empty (dead pids' files are stale)."""
    Path(env["RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
    metrics = env.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics:
        folder = Path(metrics)
        folder.mkdir(parents=True, exist_ok=True)
        # Empty it, not remove it: it is usually a tmpfs mount point.
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def render_nginx(settings, runtime_dir: Path, web_host: str) -> Path:
    """Render nginx.conf into ``runtime_dir`` for the compose network's service names."""
    from nginx.render import render

    return render(settings, runtime_dir, web_host=web_host, flower_host="flower", nginx_here=False)


def main(argv: list[str]) -> int:
    """Dispatch on the first argument; see the module docstring."""
    if not argv:
        sys.stderr.write("usage: python -m stack.container PROCESS | render-nginx DIR [WEB_HOST] | COMMAND...\n")
        return 2
    if argv[0] == "render-nginx":
        if len(argv) not in (2, 3):
            sys.stderr.write("usage: python -m stack.container render-nginx DIR [WEB_HOST]\n")
            return 2
        from worker.errors import ConfigError
        from worker.runtime import settings_or_exit

        settings = settings_or_exit()
        try:
            path = render_nginx(settings, Path(argv[1]), argv[2] if len(argv) == 3 else "web")
        except (ValueError, ConfigError) as exc:
            sys.stderr.write(f"recording-cache: {exc}\n")
            return 2
        sys.stdout.write(f"{path}\n")
        return 0
    commands = procfile.commands()
    if argv[0] not in commands:
        try:
            os.execvp(argv[0], argv)
        except FileNotFoundError:
            sys.stderr.write(
                f"recording-cache: {argv[0]!r} is neither a Procfile process ({', '.join(commands)}) nor a command\n"
            )
            return 127
    from worker.runtime import settings_or_exit

    settings = settings_or_exit()
    env = process_environment(settings, argv[0], os.environ)
    prepare_runtime(env)
    os.chdir(procfile.ROOT)
    shell = procfile.shell_argv(argv[0], argv[1:])
    os.execvpe(shell[0], shell, env)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
