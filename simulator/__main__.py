"""Command line: ``python -m simulator serve`` and ``python -m simulator call``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any, NoReturn

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from simulator.app import create_app
from simulator.callbacks import CALL_STATUS_PATH, RECORDING_STATUS_PATH, place_call
from simulator.control import MAX_SIZE, MIN_SIZE
from simulator.knobs import KNOB_NAMES

log = logging.getLogger("simulator")
DEFAULT_PORT = 8089


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, without the usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _RequestLog(WSGIRequestHandler):
    """Werkzeug handler that logs one plain line per request (no ANSI colours)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.info('%s "%s" %s', self.address_string(), self.requestline, code)


def _int_between(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
    return value


def _port(text: str) -> int:
    return _int_between(text, 0, 65535)


def _size(text: str) -> int:
    return _int_between(text, MIN_SIZE, MAX_SIZE)


def _knob(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or name not in KNOB_NAMES:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(sorted(KNOB_NAMES))}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw  # bare strings such as redirect URLs


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI parser; defaults come from the environment."""
    env = os.environ
    port = env.get("SIMULATOR_PORT", str(DEFAULT_PORT))
    parser = _Parser(prog="simulator", description="Twilio REST API simulator")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_text in (("serve", "run the simulator"), ("call", "place a simulated call")):
        sub = commands.add_parser(name, help=help_text)
        # SIM_* lets the demo hand the simulator generated credentials without
        # posing as real Twilio ones; TWILIO_* is the usual fallback.
        sub.add_argument(
            "--account-sid",
            default=env.get("SIM_ACCOUNT_SID") or env.get("TWILIO_ACCOUNT_SID"),
            help="default: $SIM_ACCOUNT_SID or $TWILIO_ACCOUNT_SID",
        )
        sub.add_argument(
            "--auth-token",
            default=env.get("SIM_AUTH_TOKEN") or env.get("TWILIO_AUTH_TOKEN"),
            help="default: $SIM_AUTH_TOKEN or $TWILIO_AUTH_TOKEN",
        )
        if name == "serve":
            sub.add_argument("--host", default="127.0.0.1")
            sub.add_argument(
                "--port", type=_port, default=port, help="0 picks a free port (default: $SIMULATOR_PORT or 8089)"
            )
            sub.add_argument(
                "--public-url",
                default=env.get("SIMULATOR_PUBLIC_URL"),
                help="base URL put in media_url (default: the request's host)",
            )
            sub.add_argument(
                "--service-url",
                default=env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{env.get('HTTP_PORT', '8080')}",
                help="Recording Cache's URL for /_sim/place-call (default: $PUBLIC_BASE_URL)",
            )
            sub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
        else:
            sub.add_argument("--sim", default=env.get("SIMULATOR_URL", f"http://127.0.0.1:{port}"))
            sub.add_argument("--service", required=True, help="base URL of Recording Cache")
            sub.add_argument("--size", type=_size, default=65_536)
            sub.add_argument("--child", action="store_true", help="add a <Dial> child leg")
            sub.add_argument("--fmt", choices=["mp3", "wav"], default="mp3")
            sub.add_argument("--recording-status-path", default=RECORDING_STATUS_PATH)
            sub.add_argument("--call-status-path", default=CALL_STATUS_PATH)
            sub.add_argument(
                "--knob",
                type=_knob,
                action="append",
                default=[],
                metavar="NAME=VALUE",
                help="fault knob, e.g. ready_after=2",
            )
    return parser


def _credentials(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.account_sid or not args.account_sid.startswith("AC"):
        parser.error("--account-sid (or SIM_/TWILIO_ACCOUNT_SID) must be an AC... SID")
    if not args.auth_token:
        parser.error("--auth-token (or SIM_/TWILIO_AUTH_TOKEN) is required")


def serve(args: argparse.Namespace) -> int:
    """Run the threaded server until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(args.account_sid, args.auth_token, public_url=args.public_url, service_url=args.service_url)
    # Bind here rather than in make_server(): werkzeug answers a busy port with
    # its own multi-line message and sys.exit(), not an error we can report.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        listener = socket.create_server((args.host, args.port), family=family, backlog=128)
    except OSError as error:
        print(f"simulator: error: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    with listener:  # make_server() duplicates the descriptor
        server = make_server(
            args.host, args.port, app, threaded=True, request_handler=_RequestLog, fd=listener.fileno()
        )

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever() returns, and serve_forever()
        # runs in this very thread, so it must be called from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("simulator listening url=http://%s:%d", args.host, server.port)
    try:
        server.serve_forever(poll_interval=0.1)  # how soon a stop request is noticed
    finally:
        server.server_close()
    log.info("simulator stopped")
    return 0


def call(args: argparse.Namespace) -> int:
    """Place one call and print a one-line summary; exit 1 if a callback failed."""
    try:
        result = place_call(
            args.sim,
            args.service,
            args.account_sid,
            args.auth_token,
            size=args.size,
            child=args.child,
            fmt=args.fmt,
            recording_status_path=args.recording_status_path,
            call_status_path=args.call_status_path,
            **dict(args.knob),
        )
    except (requests.RequestException, RuntimeError, ValueError) as error:
        print(f"simulator: error: {error}", file=sys.stderr)
        return 1
    statuses = ",".join(f"{cb['kind']}:{cb['event']}={cb['status_code']}" for cb in result["callbacks"])
    print(
        f"call_sid={result['call_sid']} child_call_sid={result['child_call_sid'] or '-'} "
        f"recording_sid={result['recording_sid'] or '-'} callbacks={statuses}"
    )
    return 0 if all(code < 400 for code in result["callback_statuses"]) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _credentials(parser, args)
    return serve(args) if args.command == "serve" else call(args)


if __name__ == "__main__":
    sys.exit(main())
