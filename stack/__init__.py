"""Start Recording Cache's processes from the Procfile, the one table of commands.

``make run`` (through honcho), the container entrypoint, the test suite and
``make bench`` all read the Procfile here, so a process's command is written
in one place. ``stack.local.Stack`` runs a whole deployment on free ports
under a temp folder for tests and the bench.
"""

from .local import Proc, Stack
from .ports import free_port, free_ports, port_open, wait_for
from .procfile import ROOT

__all__ = ["ROOT", "Proc", "Stack", "free_port", "free_ports", "port_open", "wait_for"]
