"""`make call`: the bundled simulator places a call and posts Twilio's callbacks.

Uses the same settings as the running stack (demo secrets included), so it
needs no arguments: ``make call``, or ``make call ARGS="--child --size 1048576"``
and one option per kind of recording (``--conference``, ``--mono``,
``--absent``, ``--failed``, ``--encrypted``, ``--subaccount``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import redis
import requests
from cryptography.hazmat.primitives import serialization

from simulator.callbacks import place_call
from simulator.control import MAX_SIZE, MIN_SIZE
from worker import accounts, twilio_api
from worker.config import DEFAULT_API_BASE_URL, Settings
from worker.runtime import settings_or_exit
from worker.signing import signed_url


def _size(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not MIN_SIZE <= int(text) <= MAX_SIZE:
        raise argparse.ArgumentTypeError(f"expected {MIN_SIZE}-{MAX_SIZE} bytes, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make call", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_size, default=65536, help="recording size in bytes (default 65536)")
    owner = parser.add_mutually_exclusive_group()
    owner.add_argument("--child", action="store_true", help="an outbound <Dial>: add a child leg")
    owner.add_argument("--conference", action="store_true", help="a conference's recording (no call leg)")
    channels = parser.add_mutually_exclusive_group()
    channels.add_argument("--dual", action="store_true", help="recorded in two channels (a call's default)")
    channels.add_argument("--mono", action="store_true", help="recorded in one channel (a conference's default)")
    ending = parser.add_mutually_exclusive_group()
    ending.add_argument("--absent", action="store_true", help="Twilio ends it absent (16101, too short)")
    ending.add_argument("--failed", action="store_true", help="Twilio ends it failed")
    ending.add_argument(
        "--encrypted", action="store_true", help="encrypted for the first key in TWILIO_ENCRYPTION_KEYS_DIR"
    )
    parser.add_argument(
        "--subaccount", action="store_true", help="in a new subaccount (its webhooks signed with its own token)"
    )
    return parser


def _public_key(settings: Settings) -> tuple[str, str]:
    """(key SID, public key PEM) of the first private key in TWILIO_ENCRYPTION_KEYS_DIR."""
    folder = settings.twilio_encryption_keys_dir
    keys = sorted(folder.glob("CR*.pem")) if folder else []
    if not keys:
        raise ValueError("--encrypted needs TWILIO_ENCRYPTION_KEYS_DIR with a <public_key_sid>.pem private key")
    private = serialization.load_pem_private_key(Path(keys[0]).read_bytes(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keys[0].stem, public.decode()


def _subaccount(settings: Settings) -> tuple[str, str]:
    """A new subaccount on the simulator, known to the service before its first webhook."""
    reply = requests.post(f"{settings.twilio_api_base_url}/_sim/subaccounts", timeout=10)
    reply.raise_for_status()
    created = reply.json()
    r = redis.Redis.from_url(settings.redis_url)
    try:
        accounts.sync(settings, r, twilio_api.make_client(settings))  # what the worker does every 5 minutes
    finally:
        r.close()
    return created["account_sid"], created["auth_token"]


def _kind(args: argparse.Namespace, settings: Settings) -> dict:
    """The simulator's knobs for the kind of recording asked for."""
    knobs: dict = {"child": args.child}
    if args.conference:
        knobs["conference"] = True
    if args.dual or args.mono:
        knobs["channels"] = 2 if args.dual else 1
    if args.absent or args.failed:
        knobs["status"] = "absent" if args.absent else "failed"
    if args.encrypted:
        if settings.recording_format != "wav":
            raise ValueError("--encrypted needs RECORDING_FORMAT=wav: Twilio encrypts WAV only")
        sid, pem = _public_key(settings)
        reply = requests.post(
            f"{settings.twilio_api_base_url}/_sim/keys", json={"public_key_sid": sid, "public_key_pem": pem}, timeout=10
        )
        reply.raise_for_status()
        knobs["encrypted"] = sid
    return knobs


def main(argv: list[str]) -> int:
    """Place one simulated call and print its SIDs, the callbacks' answers and where to hear it."""
    args = _parser().parse_args(argv)
    settings = settings_or_exit()
    if settings.twilio_api_base_url == DEFAULT_API_BASE_URL:
        sys.stderr.write("make call: TWILIO_API_BASE_URL is Twilio itself; calls are simulated only in demo mode\n")
        return 2
    try:
        account_sid, auth_token = _subaccount(settings) if args.subaccount else (None, None)
        call = place_call(
            settings.twilio_api_base_url,
            settings.public_base_url,
            account_sid or settings.twilio_account_sid,
            auth_token or settings.twilio_auth_token,
            size=args.size,
            fmt=settings.recording_format,
            **_kind(args, settings),
        )
    except ValueError as exc:
        sys.stderr.write(f"make call: {exc}\n")
        return 2
    except (requests.RequestException, RuntimeError) as exc:
        sys.stderr.write(f"make call: is `make run` running? {exc}\n")
        return 1
    statuses = ",".join(str(code) for code in call["callback_statuses"])
    play = call["conference_sid"] or call["child_call_sid"] or call["recording_sid"]
    url = settings.public_base_url + signed_url(play, settings.recording_format, settings.playback_signing_key, 3600)
    sys.stdout.write(
        f"call_sid={call['call_sid']} child_call_sid={call['child_call_sid']} "
        f"conference_sid={call['conference_sid']} recording_sid={call['recording_sid']} "
        f"account_sid={call['account_sid']} "
        f"bytes={args.size} callbacks={statuses}\n"
        f"next: open {settings.public_base_url}/ (demo page) or play {url}\n"
    )
    return 0 if all(code < 400 for code in call["callback_statuses"]) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
