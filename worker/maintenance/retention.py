"""Opt-in: delete Twilio's copy N days after a verified download.

DELETE_FROM_TWILIO_AFTER_DAYS=N (off by default). A recording qualifies when
it was downloaded at least N days ago, its file still hashes to the sidecar's
sha256, and its size equals what Twilio serves (a HEAD of the media, not a
download). The sidecar is marked ``pinned`` *before* the DELETE, so eviction
can never remove the last copy, even if this process dies halfway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
import requests
from twilio.rest import Client

from .. import metrics, tiers, twilio_api
from ..config import Settings
from ..errors import RecordingNotFound, UpstreamError
from ..locks import MaintenanceLock, release_quietly
from ..sidecar import Sidecar
from ..twilio_api import call_twilio
from . import Report

log = logging.getLogger(__name__)


@dataclass
class RetentionReport(Report):
    """What one pass found and did."""

    due: int = 0
    deleted: int = 0
    would_delete: int = 0
    refused: int = 0
    failed: int = 0


def _twilio_size(session: requests.Session, settings: Settings, sid: str, fmt: str) -> int | None:
    url = twilio_api.media_url(settings, sid, fmt)
    try:
        response = session.head(url, allow_redirects=True, timeout=settings.download_connect_timeout + 5)
    except requests.RequestException:
        return None
    length = response.headers.get("Content-Length", "")
    return int(length) if response.status_code == 200 and length.isdigit() else None


def _due(tier: tiers.Tier, cutoff: datetime) -> Iterator[Sidecar]:
    """Facts of recordings downloaded before ``cutoff`` whose Twilio copy remains."""
    for facts in tier.every():
        if facts.twilio_deleted_at:
            continue
        try:
            downloaded = datetime.fromisoformat(facts.downloaded_at or "")
        except (TypeError, ValueError):
            continue
        if downloaded <= cutoff:
            yield facts


def delete_verified(
    settings: Settings,
    r: redis.Redis,
    session: requests.Session,
    client: Client,
    now: datetime | None = None,
    dry_run: bool = False,
    tier: tiers.Tier | None = None,
) -> RetentionReport:
    """Delete Twilio's copy of every verified recording old enough; log each one."""
    report = RetentionReport()
    tier = tier or tiers.for_settings(settings)
    if settings.delete_from_twilio_after_days is None:
        return report
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.delete_from_twilio_after_days)
    lock = MaintenanceLock(r, "retention", ttl=3600)
    if not lock.acquire():
        return report
    try:
        for facts in _due(tier, cutoff):
            report.due += 1
            _delete_one(settings, session, client, tier, facts, now, dry_run, report)
    finally:
        release_quietly(lock)
    log.info("retention.done", extra={**report.as_dict(), "dry_run": dry_run})
    return report


def _delete_one(
    settings, session, client, tier: tiers.Tier, facts: Sidecar, now: datetime, dry_run: bool, report: RetentionReport
) -> None:
    sid, fmt = facts.recording_sid, facts.format
    logged = {"recording_sid": sid, "format": fmt, "bytes": facts.bytes}
    if not tier.verify(facts):  # re-read now, from the volume or the store
        report.refused += 1
        metrics.TWILIO_DELETIONS.labels("refused").inc()
        log.error("retention.refused", extra={**logged, "reason": "local file missing or sha256 differs"})
        return
    remote = _twilio_size(session, settings, sid, fmt)
    if remote != facts.bytes:
        report.refused += 1
        metrics.TWILIO_DELETIONS.labels("refused").inc()
        log.error("retention.refused", extra={**logged, "reason": f"Twilio serves {remote} bytes"})
        return
    if dry_run:
        report.would_delete += 1
        log.info("retention.would_delete", extra=logged)
        return
    # Pinned before the DELETE: eviction never removes what may be the last copy.
    tier.mark(facts.marked(pinned=True))
    try:
        call_twilio(client.recordings(sid).delete)
    except RecordingNotFound:
        pass  # already gone at Twilio: the local copy is the one that counts
    except UpstreamError as exc:
        report.failed += 1
        metrics.TWILIO_DELETIONS.labels("failed").inc()
        log.error("retention.failed", extra={**logged, "reason": str(exc)})
        return
    tier.mark(facts.marked(pinned=True, twilio_deleted_at=now.isoformat()))
    report.deleted += 1
    metrics.TWILIO_DELETIONS.labels("deleted").inc()
    log.info("retention.deleted", extra=logged)
