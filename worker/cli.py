"""Operator commands: ``recording-cache <command>`` (or ``python -m worker``); ``--help`` lists them.

Each prints a one-line JSON summary on stdout; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import redis

from .config import Settings
from .errors import ConfigError, RecordingCacheError
from .resources import Resources
from .runtime import settings_or_exit
from .sids import require_sid


def _clients(settings: Settings) -> Resources:
    from .celery_app import create_celery

    return Resources.build(settings, create_celery(settings))


def _sync_accounts(settings: Settings, args: argparse.Namespace) -> dict:
    from .accounts import sync

    res = _clients(settings)
    return sync(settings, res.redis, res.twilio).as_dict()


def _reconcile(settings: Settings, args: argparse.Namespace) -> dict:
    from .maintenance.reconcile import reconcile

    res = _clients(settings)
    return reconcile(settings, res.redis, None if args.no_twilio else res.twilio, res.publisher, res.tier).as_dict()


def _backfill(settings: Settings, args: argparse.Namespace) -> dict:
    from .maintenance.backfill import backfill

    res = _clients(settings)
    tty = sys.stderr.isatty()

    def progress(report) -> None:
        if tty or report.found % 1000 == 0:
            line = " ".join(f"{k}={v}" for k, v in report.as_dict().items())
            sys.stderr.write(("\r" if tty else "") + f"backfill {line}" + ("" if tty else "\n"))

    try:
        report = backfill(
            settings,
            res.twilio,
            res.publisher,
            args.since,
            args.until,
            args.call,
            args.dry_run,
            args.page_size,
            progress,
            res.tier,
        )
    finally:
        if tty:
            sys.stderr.write("\n")
    return report.as_dict()


def _evict(settings: Settings, args: argparse.Namespace) -> dict:
    from .maintenance import evict

    return evict.evict_played(settings, redis.Redis.from_url(settings.redis_url), dry_run=args.dry_run).as_dict()


def _index_volume(settings: Settings, args: argparse.Namespace) -> dict:
    from .maintenance import evict

    report = evict.rebuild_index(settings, redis.Redis.from_url(settings.redis_url), True, args.rate)
    if report is None:
        return {"indexed": 0, "skipped": "bucket mode, or another scan is running"}
    return {"indexed": report.indexed, "seconds": round(report.seconds, 1)}


def _migrate_layout(settings: Settings, _args: argparse.Namespace) -> dict:
    from .maintenance import relayout

    report = relayout.migrate(settings, redis.Redis.from_url(settings.redis_url))
    if report is None:
        return {"moved": 0, "skipped": "another process is migrating"}
    return report.as_dict()


def _peaks(settings: Settings, args: argparse.Namespace) -> dict:
    from . import sidecar, waveforms

    if settings.bucket is not None:
        raise ConfigError("peaks are computed for recordings kept on the volume; STORAGE_URL keeps them in a bucket")
    counts: dict[str, int] = {}
    for facts in sidecar.every(settings.recordings_dir):  # every cached recording, one sidecar at a time
        outcome = waveforms.make(settings.recordings_dir, facts.recording_sid, facts.format, again=args.again)
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return counts


def _delete(settings: Settings, args: argparse.Namespace) -> dict:
    from .maintenance import retention

    res = _clients(settings)
    return retention.delete_verified(
        settings, res.redis, res.session, res.twilio, dry_run=args.dry_run, tier=res.tier
    ).as_dict()


def _ingest(settings: Settings, _args: argparse.Namespace) -> dict:
    from .maintenance import playlog

    return playlog.ingest(settings, redis.Redis.from_url(settings.redis_url)).as_dict()


def _check_config(settings: Settings, _args: argparse.Namespace) -> dict:
    for name, folder in (("RECORDINGS_DIR", settings.recordings_dir), ("PLAYBACK_LOG", settings.playback_log.parent)):
        # The nearest part that exists must be a folder, or nothing can be created there.
        existing = next(path for path in (folder, *folder.parents) if path.exists())
        if not existing.is_dir():
            raise ConfigError(f"{name} cannot be created: {existing} is not a folder")
    return {"configuration": "ok", "demo": settings.demo}


def _date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _page_size(text: str) -> int:
    # Twilio's list API takes 1-1000 per page.
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"expected 1-1000, got {text!r}")
    return int(text)


def _rate(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _call_sid(text: str) -> str:
    try:
        return require_sid(text, "CA", "--call")
    except RecordingCacheError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "recording-cache") -> argparse.ArgumentParser:
    """The CLI's parser."""
    parser = argparse.ArgumentParser(prog=prog, description="Recording Cache operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-config", help="validate the settings").set_defaults(run=_check_config)
    rec = commands.add_parser("reconcile", help="enqueue recordings missing from the volume")
    rec.add_argument("--no-twilio", action="store_true", help="only re-enqueue what webhooks announced")
    rec.set_defaults(run=_reconcile)
    back = commands.add_parser("backfill", help="enqueue older recordings listed by Twilio")
    back.add_argument("--since", type=_date, required=True, help="YYYY-MM-DD (UTC), inclusive")
    back.add_argument("--until", type=_date, help="YYYY-MM-DD (UTC), exclusive")
    back.add_argument("--call", type=_call_sid, help="only this CallSid's recordings")
    back.add_argument("--dry-run", action="store_true", help="count, enqueue nothing")
    back.add_argument("--page-size", type=_page_size, default=1000, help="recordings per Twilio page, 1-1000")
    back.set_defaults(run=_backfill)
    ev = commands.add_parser("evict", help="evict least recently played recordings above CACHE_MAX_BYTES")
    ev.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    ev.set_defaults(run=_evict)
    ix = commands.add_parser("index-volume", help="scan the volume into the index eviction reads (rerun-safe)")
    ix.add_argument("--rate", type=_rate, default=50_000, help="files per second at most (default 50000)")
    ix.set_defaults(run=_index_volume)
    commands.add_parser(
        "migrate-layout", help="move a volume an earlier version wrote flat into fan-out folders (rerun-safe)"
    ).set_defaults(run=_migrate_layout)
    pk = commands.add_parser("peaks", help="compute waveform peaks of cached recordings that lack them (rerun-safe)")
    pk.add_argument("--again", action="store_true", help="recompute those that have them too")
    pk.set_defaults(run=_peaks)
    de = commands.add_parser("delete-from-twilio", help="delete verified recordings' Twilio copies (opt-in)")
    de.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    de.set_defaults(run=_delete)
    commands.add_parser("ingest-playlog", help="count nginx's playback hits now").set_defaults(run=_ingest)
    commands.add_parser("sync-accounts", help="refresh the subaccounts' auth tokens from Twilio now").set_defaults(
        run=_sync_accounts
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "recording-cache") -> int:
    """Run one command."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command == "backfill" and args.until is not None and args.until <= args.since:
        parser.error("backfill: --until must be after --since")
    settings = settings_or_exit()
    try:
        result = args.run(settings, args)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog} {args.command}: interrupted; safe to run again\n")
        return 130
    except (redis.RedisError, OSError, RecordingCacheError) as exc:
        sys.stderr.write(f"{prog} {args.command}: {type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0
