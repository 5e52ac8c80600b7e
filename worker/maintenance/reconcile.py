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
from collections.abc import Iterator
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


def _remembered_completed(r: redis.Redis, batch: int = 1000) -> Iterator[tuple[str, str | None, str | None]]:
    """(RecordingSid, CallSid, subaccount or None) of every remembered ``completed`` callback, a batch at a time."""
    names: list[bytes] = []
    for name in r.scan_iter(match=keys.WEBHOOK_PATTERN, count=batch):
        names.append(name)
        if len(names) == batch:
            yield from _completed_of(r, names)
            names = []
    yield from _completed_of(r, names)


def _completed_of(r: redis.Redis, names: list[bytes]) -> Iterator[tuple[str, str | None, str | None]]:
    if not names:
        return
    for raw_key, raw in zip(names, r.mget(names), strict=True):  # one MGET per batch, not a GET each
        data = json.loads(raw) if raw else {}
        if data.get("status") == "completed":
            yield keys.sid_of_webhook(raw_key), data.get("call_sid"), data.get("account_sid")


def _listings(settings: Settings, r: redis.Redis, client: Client):
    """(subaccount or None, its recordings' lazy stream) for the main account and each known subaccount."""
    yield None, client.recordings.stream
    for raw in sorted(r.hkeys(keys.subaccounts())):
        sub = raw.decode()
        if is_sid(sub, "AC") and sub != settings.twilio_account_sid:
            yield sub, client.api.v2010.accounts(sub).recordings.stream


def _listed(settings: Settings, r: redis.Redis, client: Client, report: ReconcileReport):
    """(RecordingSid, CallSid, subaccount) of Twilio's recent completed recordings, one page in memory at a time."""
    since = datetime.now(UTC) - timedelta(hours=settings.reconcile_lookback_hours)
    # The main account's recordings, then each known subaccount's (its list, through the main account).
    for account_sid, listing in _listings(settings, r, client):
        pages = call_twilio(listing, date_created_after=since, page_size=1000)
        while (rec := call_twilio(next, pages, None)) is not None:
            if not created_within(rec, since):
                continue
            report.listed += 1
            if rec.status == "completed" and is_sid(rec.sid, "RE"):  # a SID becomes a path: never trust one
                yield rec.sid, rec.call_sid, account_sid


def reconcile(
    settings: Settings,
    r: redis.Redis,
    client: Client | None,
    publisher: FastPublisher,
    tier: tiers.Tier | None = None,
) -> ReconcileReport:
    """Enqueue every recording Twilio or a webhook announced that is not kept; sweep what dead writers left.

    Bounded memory whatever the lists' length: webhooks and Twilio's pages are
    read a batch at a time, and a recording announced by both is sent once
    (the enqueue claim of ``queue.enqueue_fetch``).
    """
    report = ReconcileReport()
    tier = tier or tiers.for_settings(settings)
    fmt = settings.recording_format
    # Temp files on the volume and, in bucket mode, multipart uploads left open.
    report.temp_removed = tier.sweep(max(STALE_TEMP_SECONDS, settings.task_time_limit))
    for sid, call_sid, account_sid in _remembered_completed(r):
        report.remembered += 1
        _enqueue_missing(tier, publisher, report, sid, fmt, call_sid, account_sid)
    if client is not None:
        for sid, call_sid, account_sid in _listed(settings, r, client, report):
            _enqueue_missing(tier, publisher, report, sid, fmt, call_sid, account_sid)
    # An idle pass (nothing missing, nothing left over) is a debug line: the log stays about events.
    acted = report.enqueued or report.temp_removed
    log.log(logging.INFO if acted else logging.DEBUG, "reconcile.done", extra=report.as_dict())
    return report


def _enqueue_missing(tier, publisher, report: ReconcileReport, sid, fmt, call_sid, account_sid) -> None:
    if tier.is_complete(sid, fmt):
        report.already_cached += 1
    elif queue.enqueue_fetch(publisher, sid, fmt, "reconcile", call_sid, account_sid=account_sid):
        report.enqueued += 1
