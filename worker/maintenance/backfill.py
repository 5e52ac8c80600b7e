"""Bring older recordings in: list them through the twilio package and enqueue
those not cached. Safe to interrupt and rerun: cached ones are skipped and
enqueueing is deduplicated like every fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from twilio.rest import Client

from .. import queue, tiers
from ..config import Settings
from ..publish import FastPublisher
from ..sids import is_sid
from ..twilio_api import call_twilio, created_within
from . import Report

log = logging.getLogger(__name__)

PAGE_SIZE = 1000


@dataclass
class BackfillReport(Report):
    """Counts shown as the progress line and the final summary."""

    found: int = 0
    already_cached: int = 0
    already_queued: int = 0
    enqueued: int = 0
    skipped: int = 0
    failed: int = 0


def backfill(
    settings: Settings,
    client: Client,
    publisher: FastPublisher,
    since: datetime,
    until: datetime | None = None,
    call_sid: str | None = None,
    dry_run: bool = False,
    page_size: int = PAGE_SIZE,
    progress: Callable[[BackfillReport], None] = lambda report: None,
    tier: tiers.Tier | None = None,
) -> BackfillReport:
    """Enqueue every completed recording in the window that the volume lacks."""
    report = BackfillReport()
    fmt, tier = settings.recording_format, tier or tiers.for_settings(settings)
    filters = {"date_created_after": since, "page_size": page_size}
    if until:
        filters["date_created_before"] = until
    if call_sid:
        filters["call_sid"] = call_sid
    pages = call_twilio(client.recordings.stream, **filters)  # lazy: one page at a time
    while (rec := call_twilio(next, pages, None)) is not None:
        if not created_within(rec, since, until):
            continue
        report.found += 1
        if rec.status != "completed" or not is_sid(rec.sid, "RE"):  # a SID becomes a path: never trust one
            report.skipped += 1
        elif tier.is_complete(rec.sid, fmt):
            report.already_cached += 1
        elif dry_run:
            report.enqueued += 1
        else:
            try:
                sent = queue.enqueue_fetch(publisher, rec.sid, fmt, "backfill", rec.call_sid)
            except Exception as exc:  # a broker hiccup: count it, keep going, a rerun picks it up
                report.failed += 1
                log.error("backfill.enqueue_failed", extra={"recording_sid": rec.sid, "error_type": type(exc).__name__})
            else:
                report.enqueued += int(sent)
                report.already_queued += int(not sent)
        progress(report)
    log.info("backfill.done", extra={**report.as_dict(), "dry_run": dry_run})
    return report
