"""Opt-in: delete Twilio's copy N days after a verified download.

DELETE_FROM_TWILIO_AFTER_DAYS=N (off by default). A recording qualifies when
it was downloaded at least N days ago, its file still hashes to the sidecar's
sha256, and its size equals what Twilio serves (a HEAD of the media, not a
download). The sidecar is marked ``pinned`` *before* the DELETE, so eviction
can never remove the last copy, even if this process dies halfway.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import requests
from redis.lock import Lock
from twilio.rest import Client

from . import metrics, storage, twilio_api
from .config import Settings
from .errors import RecordingNotFound, UpstreamError
from .sids import FORMATS, is_sid
from .twilio_api import call_twilio

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    """What one pass found and did."""

    due: int = 0
    deleted: int = 0
    would_delete: int = 0
    refused: int = 0
    failed: int = 0

    def as_dict(self) -> dict:
        """Plain values for logs, task results and the CLI."""
        return asdict(self)


def _twilio_size(session: requests.Session, settings: Settings, sid: str, fmt: str) -> int | None:
    url = twilio_api.media_url(settings, sid, fmt)
    try:
        response = session.head(url, allow_redirects=True, timeout=settings.download_connect_timeout + 5)
    except requests.RequestException:
        return None
    length = response.headers.get("Content-Length", "")
    return int(length) if response.status_code == 200 and length.isdigit() else None


def _due(root: Path, cutoff: datetime):
    """Sidecars of recordings downloaded before ``cutoff`` whose Twilio copy remains."""
    for path in root.glob("RE*.*.json"):
        sid, fmt, _ = path.name.split(".", 2)
        data = storage.read_sidecar(root, sid, fmt) if is_sid(sid, "RE") and fmt in FORMATS else None
        if not data or data.get("twilio_deleted_at"):
            continue
        try:
            downloaded = datetime.fromisoformat(data["downloaded_at"])
        except (KeyError, ValueError):
            continue
        if downloaded <= cutoff:
            yield data


def delete_verified(
    settings: Settings,
    r: redis.Redis,
    session: requests.Session,
    client: Client,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionReport:
    """Delete Twilio's copy of every verified recording old enough; log each one."""
    report = RetentionReport()
    if settings.delete_from_twilio_after_days is None:
        return report
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.delete_from_twilio_after_days)
    lock = Lock(r, "maintenance:retention", timeout=3600, blocking=False)
    if not lock.acquire():
        return report
    try:
        for data in _due(settings.recordings_dir, cutoff):
            report.due += 1
            _delete_one(settings, session, client, data, now, dry_run, report)
    finally:
        lock.release()
    log.info("retention.done", extra={**report.as_dict(), "dry_run": dry_run})
    return report


def _delete_one(settings, session, client, data: dict, now: datetime, dry_run: bool, report: RetentionReport) -> None:
    root, sid, fmt = settings.recordings_dir, data["recording_sid"], data["format"]
    facts = {"recording_sid": sid, "format": fmt, "bytes": data.get("bytes")}
    path = storage.media_path(root, sid, fmt)
    if not path.exists() or storage.file_sha256(path) != data.get("sha256"):
        report.refused += 1
        metrics.TWILIO_DELETIONS.labels("refused").inc()
        log.error("retention.refused", extra={**facts, "reason": "local file missing or sha256 differs"})
        return
    remote = _twilio_size(session, settings, sid, fmt)
    if remote != data.get("bytes"):
        report.refused += 1
        metrics.TWILIO_DELETIONS.labels("refused").inc()
        log.error("retention.refused", extra={**facts, "reason": f"Twilio serves {remote} bytes"})
        return
    if dry_run:
        report.would_delete += 1
        log.info("retention.would_delete", extra=facts)
        return
    sidecar = storage.sidecar_path(root, sid, fmt)
    storage.write_json_atomically(sidecar, {**data, "pinned": True})
    try:
        call_twilio(client.recordings(sid).delete)
    except RecordingNotFound:
        pass  # already gone at Twilio: the local copy is the one that counts
    except UpstreamError as exc:
        report.failed += 1
        metrics.TWILIO_DELETIONS.labels("failed").inc()
        log.error("retention.failed", extra={**facts, "reason": str(exc)})
        return
    storage.write_json_atomically(sidecar, {**data, "pinned": True, "twilio_deleted_at": now.isoformat()})
    report.deleted += 1
    metrics.TWILIO_DELETIONS.labels("deleted").inc()
    log.info("retention.deleted", extra=facts)
