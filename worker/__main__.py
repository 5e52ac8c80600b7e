"""``python -m worker <command>``: the operator commands (also installed as ``recording-cache``)."""

from .cli import main

raise SystemExit(main(prog="python -m worker"))
