"""The Procfile, read through honcho's own parser.

Every process command is written once, in the Procfile; this module hands a
line to whoever starts it: honcho under ``make run``, the container
entrypoint, the test stack and the bench. A command runs under ``/bin/sh`` so
its ``${VAR:-default}`` expansions behave as they do under honcho.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from honcho.environ import parse_procfile

from worker.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"


def commands(path: Path = PROCFILE) -> dict[str, str]:
    """The Procfile's processes, name -> shell command, in file order."""
    return dict(parse_procfile(path.read_text()).processes)


def shell_argv(process: str, extra_args: tuple[str, ...] | list[str] = (), path: Path = PROCFILE) -> list[str]:
    """argv that runs one Procfile line, ``extra_args`` appended (quoted), as the shell's own pid."""
    table = commands(path)
    if process not in table:
        raise KeyError(f"{process!r} is not a Procfile process ({', '.join(table)})")
    command = " ".join([table[process], *map(shlex.quote, extra_args)])
    return ["/bin/sh", "-c", f"exec {command}"]


def settings_environment(settings: Settings) -> dict[str, str]:
    """What the Procfile's lines read that Settings resolved: ports (some lines have no
    default of their own) and Flower's FLOWER_BASIC_AUTH, even when demo mode generated it."""
    return {
        "HTTP_PORT": str(settings.http_port),
        "WEB_PORT": str(settings.web_port),
        "FLOWER_PORT": str(settings.flower_port),
        "SIMULATOR_PORT": str(settings.simulator_port),
        "FLOWER_BASIC_AUTH": settings.flower_basic_auth,
    }
