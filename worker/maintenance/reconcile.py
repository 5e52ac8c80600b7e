"""Make the volume catch up with reality.

Webhooks can be lost (Twilio retries a callback for 15 s at most) and queued
tasks can be lost with a Redis that kept nothing; the reconcile compares
Twilio's recent recordings, and the callbacks we remember, with the volume and
re-enqueues whatever is missing. Enqueueing is deduplicated like any fetch, so
running it twice at once does no harm.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from twilio.rest import Client

from .. import keys, queue, tiers
from ..config import Settings
from ..publish import FastPublisher
from ..sids import is_sid
from ..twilio_api import call_twilio, created_within
from . import Report

log = logging.getLogger(__name__)

STALE_TEMP_SECONDS = 6 * 3600


@dataclass
class ReconcileReport(Report):
    """What one reconcile pass found and did."""

    listed: int = 0
    remembered: int = 0
    already_cached: int = 0
    enqueued: int = 0
    temp_removed: int = 0


def _remembered_completed(r: redis.Redis) -> list[tuple[str, str | None, str | None]]:
    """(RecordingSid, CallSid, subaccount or None) of every remembered ``completed`` callback."""
    found = []
    names = list(r.scan_iter(match=keys.WEBHOOK_PATTERN, count=1000))
    for start in range(0, len(names), 1000):  # one MGET per thousand keys, not a GET each
        batch = names[start : start + 1000]
        for raw_key, raw in zip(batch, r.mget(batch), strict=True):
            data = json.loads(raw) if raw else {}
            if data.get("status") == "completed":
                found.append((keys.sid_of_webhook(raw_key), data.get("call_sid"), data.get("account_sid")))
    return found


def _listings(settings: Settings, r: redis.Redis, client: Client):
    """(subaccount or None, its recordings' list method) for the main account and each known subaccount."""
    yield None, client.recordings.list
    for raw in sorted(r.hkeys(keys.subaccounts())):
        sub = raw.decode()
        if is_sid(sub, "AC") and sub != settings.twilio_account_sid:
            yield sub, client.api.v2010.accounts(sub).recordings.list


def reconcile(
    settings: Settings,
    r: redis.Redis,
    client: Client | None,
    publisher: FastPublisher,
    tier: tiers.Tier | None = None,
) -> ReconcileReport:
    """Enqueue every recording Twilio or a webhook announced that is not kept; sweep what dead writers left."""
    report = ReconcileReport()
    tier = tier or tiers.for_settings(settings)
    fmt = settings.recording_format
    # Temp files on the volume and, in bucket mode, multipart uploads left open.
    report.temp_removed = tier.sweep(max(STALE_TEMP_SECONDS, settings.task_time_limit))
    wanted: dict[str, tuple[str | None, str | None]] = {}  # RecordingSid -> (its owner, its subaccount)
    for sid, call_sid, account_sid in _remembered_completed(r):
        wanted[sid] = (call_sid, account_sid)
        report.remembered += 1
    if client is not None:
        since = datetime.now(UTC) - timedelta(hours=settings.reconcile_lookback_hours)
        # The main account's recordings, then each known subaccount's (its list, through the main account).
        for account_sid, listing in _listings(settings, r, client):
            for rec in call_twilio(listing, date_created_after=since, page_size=1000):
                if not created_within(rec, since):
                    continue
                report.listed += 1
                if rec.status == "completed" and is_sid(rec.sid, "RE"):  # a SID becomes a path: never trust one
                    wanted.setdefault(rec.sid, (rec.call_sid, account_sid))
    for sid, (call_sid, account_sid) in wanted.items():
        if tier.is_complete(sid, fmt):
            report.already_cached += 1
        elif queue.enqueue_fetch(publisher, sid, fmt, "reconcile", call_sid, account_sid=account_sid):
            report.enqueued += 1
    log.info("reconcile.done", extra=report.as_dict())
    return report
