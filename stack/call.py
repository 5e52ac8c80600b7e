"""`make call`: the bundled simulator places a call and posts Twilio's callbacks.

Uses the same settings as the running stack (demo secrets included), so it
needs no arguments: ``make call`` or ``make call ARGS="--child --size 1048576"``.
"""

from __future__ import annotations

import argparse
import sys

import requests

from simulator.callbacks import place_call
from simulator.control import MAX_SIZE, MIN_SIZE
from worker.config import DEFAULT_API_BASE_URL
from worker.runtime import settings_or_exit


def _size(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not MIN_SIZE <= int(text) <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"expected {MIN_SIZE}-{MAX_SIZE} bytes, got {text!r}")
    return int(text)


def main(argv: list[str]) -> int:
    """Place one simulated call and print its SIDs and the callbacks' answers."""
    parser = argparse.ArgumentParser(prog="make call", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_size, default=65536, help="recording size in bytes (default 65536)")
    parser.add_argument("--child", action="store_true", help="an outbound <Dial>: add a child leg")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if settings.twilio_api_base_url == DEFAULT_API_BASE_URL:
        sys.stderr.write("make call: TWILIO_API_BASE_URL is Twilio itself; calls are simulated only in demo mode\n")
        return 2
    try:
        call = place_call(
            settings.twilio_api_base_url,
            settings.public_base_url,
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            size=args.size,
            child=args.child,
            fmt=settings.recording_format,
        )
    except (requests.RequestException, RuntimeError) as exc:
        sys.stderr.write(f"make call: is `make run` running? {exc}\n")
        return 1
    statuses = ",".join(str(code) for code in call["callback_statuses"])
    sys.stdout.write(
        f"call_sid={call['call_sid']} child_call_sid={call['child_call_sid']} "
        f"recording_sid={call['recording_sid']} bytes={args.size} callbacks={statuses}\n"
    )
    return 0 if all(code < 400 for code in call["callback_statuses"]) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
