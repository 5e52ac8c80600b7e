"""Operator commands: ``python -m worker <command>``.

check-config   validate the settings and exit (one line naming a bad variable)
reconcile      enqueue what Twilio or a webhook announced and the volume lacks
"""

from __future__ import annotations

import argparse
import json
import sys

import redis

from .runtime import settings_or_exit


def _reconcile(args: argparse.Namespace) -> int:
    from . import reconcile, twilio_api
    from .celery_app import create_celery

    settings = settings_or_exit()
    celery = create_celery(settings)
    client = None if args.no_twilio else twilio_api.make_client(settings)
    report = reconcile.reconcile(settings, redis.Redis.from_url(settings.redis_url), client, celery)
    sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    return 0


def _check_config(_args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    sys.stdout.write(f"configuration ok (demo={settings.demo})\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser."""
    parser = argparse.ArgumentParser(prog="python -m worker", description="Recording Cache operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-config", help="validate the settings").set_defaults(run=_check_config)
    rec = commands.add_parser("reconcile", help="enqueue recordings missing from the volume")
    rec.add_argument("--no-twilio", action="store_true", help="only re-enqueue what webhooks announced")
    rec.set_defaults(run=_reconcile)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors are one line on stderr and a non-zero exit."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (redis.RedisError, OSError) as exc:
        sys.stderr.write(f"python -m worker {args.command}: {type(exc).__name__}: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
