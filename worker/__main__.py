"""``python -m worker <command>``: the operator commands (also installed as ``recording-cache``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m worker"))
