"""Download one recording exactly once, into the volume, verified.

Plain functions: Celery tasks call them, tests call them directly with a
fakeredis or real Redis and an injected HTTP session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import requests

from . import encryption, metrics, sidecar, status, storage, tiers, twilio_api, volume_index
from .config import Settings
from .errors import LockBusy, RecordingUnavailable, UpstreamNotReady
from .lease import DownloadLease
from .sids import is_index_sid, is_sid, require_format, require_sid

log = logging.getLogger(__name__)

FINAL_TWILIO_STATUSES = ("absent", "failed", "deleted")


@dataclass(frozen=True)
class FetchOutcome:
    """How a fetch ended: ``downloaded`` or ``cached`` (already on the volume)."""

    recording_sid: str
    result: str
    bytes: int = 0
    ms: float = 0.0

    def as_dict(self, asked_for: str) -> dict:
        """The task's result, as Flower shows it: what was asked for and how it ended."""
        if asked_for == self.recording_sid:
            return {"sid": asked_for, "result": self.result, "bytes": self.bytes}
        return {"sid": asked_for, "recording_sid": self.recording_sid, "result": self.result}


def fetch_recording(
    recording_sid: str,
    fmt: str,
    settings: Settings,
    r: redis.Redis,
    session: requests.Session,
    owner_sid: str | None = None,
    recorded_at: str | None = None,
    tier: tiers.Tier | None = None,
) -> FetchOutcome:
    """Make sure the recording is kept (volume or bucket), and its owner linked; download it if nobody has.

    ``owner_sid`` is what the recording is filed under: its call (CA…), or a
    conference's (CF…); None when unknown (it is read from Twilio's resource).

    Raises LockBusy when another process holds the lock (the caller retries
    once it may have expired: its holder may have died), RecordingNotFound
    when Twilio does not know it, and UpstreamError subclasses for faults
    worth retrying.
    """
    require_sid(recording_sid, "RE")
    require_format(fmt)
    owner_sid = _checked_owner(recording_sid, owner_sid)
    tier = tier or tiers.for_settings(settings)
    outcome = _fetch_once(recording_sid, fmt, settings, r, session, owner_sid, recorded_at, tier)
    if owner_sid and outcome.result == "cached":
        tier.link_call(settings, owner_sid, recording_sid, fmt, recorded_at)
    return outcome


def _fetch_once(
    recording_sid: str,
    fmt: str,
    settings: Settings,
    r: redis.Redis,
    session: requests.Session,
    owner_sid: str | None,
    recorded_at: str | None,
    tier: tiers.Tier,
) -> FetchOutcome:
    if tier.is_complete(recording_sid, fmt):
        return _already_cached(tier, recording_sid, fmt, r)
    # What redoes this download if its holder dies: the same fetch, with what is known now.
    redo = ("recordings.fetch", [recording_sid, fmt, owner_sid, recorded_at, settings.twilio_account_sid])
    lease = DownloadLease(r, recording_sid, fmt, settings.lock_ttl_seconds, redo)
    if not lease.acquire():
        metrics.LOCK_CONTENDED.inc()
        holder = lease.holder()
        raise LockBusy(f"{recording_sid}.{fmt} is being downloaded by {holder}", lease.ttl_left(), holder)
    try:
        # Checked again under the lock: the previous holder may just have finished.
        size = tier.size(recording_sid, fmt)
        if size is not None:
            if not tier.is_complete(recording_sid, fmt):  # only the volume keeps facts apart from media
                _rewrite_sidecar(settings, session, recording_sid, fmt, owner_sid, recorded_at)
            return _already_cached(tier, recording_sid, fmt, r, size)
        staged = tier.staged(recording_sid, fmt)
        if staged is not None:  # verified earlier, its keep failed (the store was away): keep it now
            facts = _facts(settings, recording_sid, fmt, owner_sid, staged, None, recorded_at)
            tier.keep(staged, facts)
            log.info(
                "download.kept_staged", extra={"recording_sid": recording_sid, "format": fmt, "bytes": staged.bytes}
            )
            return FetchOutcome(recording_sid, "uploaded", bytes=staged.bytes)
        # Holding the lock, any temp file of this recording is a dead holder's.
        storage.remove_partial(tier.staging, recording_sid, fmt)
        return _download(recording_sid, fmt, settings, r, session, lease, owner_sid, recorded_at, tier)
    finally:
        lease.release()


def _forget_state(r: redis.Redis, recording_sid: str, fmt: str) -> None:
    """Clear in-flight hints; the file on the volume is what counts, so a
    Redis that is away right now only delays the cleanup."""
    try:
        status.clear_state(r, recording_sid, fmt)
    except redis.RedisError:
        log.warning("state.clear_failed", extra={"recording_sid": recording_sid, "format": fmt})


def _already_cached(
    tier: tiers.Tier, recording_sid: str, fmt: str, r: redis.Redis, size: int | None = None
) -> FetchOutcome:
    _forget_state(r, recording_sid, fmt)
    if size is None:
        size = tier.size(recording_sid, fmt)
    # A duplicate task (another webhook, a play, a redelivery) ends here: say why it downloaded nothing.
    log.info("download.skipped", extra={"recording_sid": recording_sid, "format": fmt, "reason": "already_cached"})
    return FetchOutcome(recording_sid, "cached", bytes=size or 0)


def _download(
    recording_sid: str,
    fmt: str,
    settings: Settings,
    r: redis.Redis,
    session: requests.Session,
    lease: DownloadLease,
    owner_sid: str | None,
    recorded_at: str | None,
    tier: tiers.Tier,
) -> FetchOutcome:
    resource = None
    # An account that encrypts its recordings: each resource says with which key.
    if owner_sid is None or settings.twilio_encryption_keys_dir is not None:
        resource, found_owner = _recording_and_call(session, settings, recording_sid)
        owner_sid = owner_sid or found_owner
        _raise_if_final(recording_sid, resource)  # no media GET for a recording Twilio has none of
    cipher = _cipher(settings, recording_sid, fmt, resource)
    started = time.monotonic()
    metrics.DOWNLOADS.labels("started").inc()
    log.info(
        "download.start", extra={"recording_sid": recording_sid, "call_sid": owner_sid, "format": fmt, "cache": "miss"}
    )
    try:
        media = twilio_api.open_media(session, settings, recording_sid, fmt)
    except UpstreamNotReady:
        # Twilio answers 404 both before the media is ready and for SIDs it
        # never had; the resource tells the two apart.
        resource = resource or twilio_api.get_recording(session, settings, recording_sid)
        _raise_if_final(recording_sid, resource)
        raise
    chunks, length = media.chunks(), media.length
    if cipher is not None:  # the plaintext is what is verified and kept
        chunks, length = encryption.decrypt_chunks(chunks, *cipher, recording_sid), length - encryption.TAG_BYTES
    with media:
        stored = storage.write_media(
            tier.staging,
            recording_sid,
            fmt,
            chunks,
            length,
            on_progress=lease.check,  # stop before the rename once the lock is lost
            part_bytes=tier.part_bytes,
        )
    ms = (time.monotonic() - started) * 1000
    facts = _facts(settings, recording_sid, fmt, owner_sid, stored, resource, recorded_at)
    tier.keep(stored, facts)  # an upload to a bucket may outlast the TTL: the lease's heartbeat renews it
    if tier.indexed:
        volume_index.add(r, recording_sid, fmt, stored.bytes, time.time())
    if owner_sid:
        tier.link_call(settings, owner_sid, recording_sid, fmt, facts.recorded_at)
    _forget_state(r, recording_sid, fmt)
    metrics.DOWNLOADS.labels("succeeded").inc()
    metrics.BYTES_DOWNLOADED.inc(stored.bytes)
    metrics.DOWNLOAD_SECONDS.observe(ms / 1000)
    log.info(
        "download.done",
        extra={
            "recording_sid": recording_sid,
            "call_sid": owner_sid,
            "format": fmt,
            "bytes": stored.bytes,
            "ms": round(ms, 1),
            "sha256": stored.sha256,
        },
    )
    return FetchOutcome(recording_sid, "downloaded", bytes=stored.bytes, ms=ms)


def _facts(
    settings: Settings,
    recording_sid: str,
    fmt: str,
    owner_sid: str | None,
    stored: storage.StoredFile,
    resource: dict | None,
    recorded_at: str | None,
) -> sidecar.Sidecar:
    """The sidecar's facts of a verified download."""
    return sidecar.Sidecar(
        recording_sid=recording_sid,
        format=fmt,
        bytes=stored.bytes,
        sha256=stored.sha256,
        channels=stored.channels or storage.file_channels(stored.path, fmt),
        call_sid=owner_sid if is_sid(owner_sid, "CA") else None,
        conference_sid=owner_sid if is_sid(owner_sid, "CF") else None,
        account_sid=settings.twilio_account_sid,
        duration=(resource or {}).get("duration"),
        recorded_at=recorded_at or _recorded_at(resource),
        downloaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _cipher(settings: Settings, recording_sid: str, fmt: str, resource: dict | None) -> tuple[bytes, bytes] | None:
    """(content key, IV) of an encrypted recording, before its media GET; None when not encrypted."""
    details = encryption.details_of(recording_sid, resource)
    if details is None:
        return None
    if fmt != "wav":
        raise encryption.Undecryptable(recording_sid, "Twilio encrypts WAV only: set RECORDING_FORMAT=wav")
    return encryption.content_key(recording_sid, settings.twilio_encryption_keys_dir, details), details.iv


def _raise_if_final(recording_sid: str, resource: dict) -> None:
    """RecordingUnavailable when Twilio's resource says the recording will never have media."""
    if resource.get("status") in FINAL_TWILIO_STATUSES:
        raise RecordingUnavailable(recording_sid, resource["status"], _error_code(resource))


def _error_code(resource: dict) -> int | None:
    """The resource's ``error_code`` when it is a number (Twilio gives null or an integer)."""
    code = resource.get("error_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _checked_owner(recording_sid: str, owner_sid: object) -> str | None:
    """``owner_sid`` when it is a CallSid or ConferenceSid; anything else (from
    Twilio's JSON or a task's arguments) is dropped with a warning: it would
    become a path and a key."""
    if owner_sid is None or is_index_sid(owner_sid):
        return owner_sid  # type: ignore[return-value]
    log.warning("download.bad_owner_sid", extra={"recording_sid": recording_sid, "value": repr(owner_sid)[:80]})
    return None


def _recording_and_call(session: requests.Session, settings: Settings, recording_sid: str) -> tuple[dict, str | None]:
    """Twilio's Recording resource and what it is filed under: its call, or
    (a conference's recording, which has no call) its conference."""
    resource = twilio_api.get_recording(session, settings, recording_sid)
    return resource, _checked_owner(recording_sid, resource.get("call_sid") or resource.get("conference_sid"))


def _rewrite_sidecar(
    settings: Settings,
    session: requests.Session,
    recording_sid: str,
    fmt: str,
    owner_sid: str | None,
    recorded_at: str | None,
) -> None:
    """The media landed but its sidecar did not (the volume failed in between): write it from the file.

    Under the lock; it never replaces a sidecar that appeared meanwhile.
    """
    resource = None
    if owner_sid is None:
        resource, owner_sid = _recording_and_call(session, settings, recording_sid)
    path = storage.media_path(settings.recordings_dir, recording_sid, fmt)
    stored = storage.StoredFile(path=path, bytes=path.stat().st_size, sha256=storage.file_sha256(path))
    facts = _facts(settings, recording_sid, fmt, owner_sid, stored, resource, recorded_at)
    if sidecar.write(settings.recordings_dir, facts, replace=False):
        log.warning("sidecar.rewritten", extra={"recording_sid": recording_sid, "format": fmt, "bytes": stored.bytes})


def _recorded_at(resource: dict | None) -> str:
    """A sortable timestamp for choosing a call's latest recording."""
    if resource:
        for field in ("start_time", "date_created"):
            value = resource.get(field)
            if value:
                try:
                    return twilio_api.iso_time(value)
                except ValueError:
                    pass
    return datetime.now(UTC).isoformat(timespec="seconds")
