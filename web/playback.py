"""The playback miss path: nginx found no file for a correctly signed URL.

nginx serves every hit itself; only misses arrive here, as an internal
subrequest carrying the original URI. The answer is immediate: enqueue a
fetch (deduplicated) and tell the player to come back.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

from flask import Blueprint, abort, jsonify, redirect, request

from worker import catalog, metrics, queue, sidecar, signing, status, storage, waveforms
from worker.errors import StorageError
from worker.sids import FORMAT, PLAYABLE_SID, RECORDING_SID, is_index_sid

from . import services

log = logging.getLogger(__name__)
bp = Blueprint("playback", __name__)

_PLAYBACK_PATH = re.compile(rf"/recordings/({PLAYABLE_SID})\.({FORMAT})")
_PEAKS_PATH = re.compile(rf"/recordings/({RECORDING_SID})\.peaks\.json")
RETRY_AFTER_SECONDS = 1


@bp.get("/internal/playback-miss")
def playback_miss():
    """202 + Retry-After and a queued fetch (or peaks); 404 when Twilio has no such recording."""
    try:
        original = urlsplit(request.headers.get("X-Original-URI", ""))
    except ValueError:  # e.g. "//[x/…": an unclosed IPv6 host, not a recording's path
        abort(404, "no such recording")
    match, peaks = _PLAYBACK_PATH.fullmatch(original.path), _PEAKS_PATH.fullmatch(original.path)
    if not match and not peaks:
        abort(404, "no such recording")
    query = parse_qs(original.query)
    settings, svc = services().settings, services()
    # nginx checked the signature already; checking again keeps this view safe
    # even if it is reached some other way.
    if not signing.verify(
        original.path,
        (query.get("expires") or [None])[0],
        (query.get("sig") or [None])[0],
        settings.playback_signing_key,
    ):
        abort(403, "invalid or expired playback signature")
    if peaks:
        return _peaks_miss(peaks.group(1), settings.recording_format)
    sid, fmt = match.groups()
    try:
        kept = svc.tier.resolve(sid, fmt)
    except StorageError as exc:  # the bucket is away: the worker's fetch retries until it is back
        log.warning("playback.store_unavailable", extra={"sid": sid, "format": fmt, "reason": str(exc)})
        kept = None
    if kept and is_index_sid(sid):
        # A bucket has no links: the call (or conference) index names the recording, and the player
        # follows. On a volume, nginx could not follow the call's link (one a migration has not
        # rewritten yet names a recording already moved into its folder): the player follows too.
        url = signing.signed_url(kept, fmt, settings.playback_signing_key, settings.playback_url_ttl)
        log.info("playback.call_redirect", extra={"sid": sid, "recording_sid": kept, "format": fmt})
        return redirect(url, code=302)
    if kept:
        return _come_back(sid, "cached", 0)
    return _not_kept(sid, fmt)


def _not_kept(sid: str, fmt: str):
    """The recording is not kept: 404 when it never will be, else a queued fetch and 202."""
    svc = services()
    final = status.final_state(svc.redis, sid, fmt)
    if final:  # Twilio marks it absent or failed: it will never play
        reason = final.get("error") or f"Twilio marks this recording {final['status']}: it has no media"
        return _gone(sid, final["status"], reason, error_code=final.get("error_code"))
    if catalog.is_known_missing(svc.redis, sid, fmt):
        abort(404, "Twilio has no recording for this SID")
    metrics.PLAYBACK_MISSES.inc()
    enqueued = queue.enqueue_fetch(svc.publisher, sid, fmt, "playback")
    log.info("playback.miss", extra={"sid": sid, "format": fmt, "cache": "miss", "enqueued": enqueued})
    return _come_back(sid, "pending", RETRY_AFTER_SECONDS)


def _peaks_miss(sid: str, fmt: str):
    """No peaks file yet: compute them (recording cached), fetch the recording first, or say why never."""
    svc = services()
    if svc.settings.bucket is not None:
        return _gone(sid, "unavailable", "waveform peaks are computed for recordings kept on the volume only")
    root = svc.settings.recordings_dir
    if not storage.is_cached(root, sid, fmt):
        return _not_kept(sid, fmt)
    facts = sidecar.read(root, sid, fmt)
    if facts and facts.peaks == waveforms.UNAVAILABLE:  # undecodable: the recording plays, without a waveform
        return _gone(sid, "unavailable", facts.peaks_error or "the recording could not be decoded")
    enqueued = queue.enqueue_peaks(svc.publisher, sid, fmt)
    log.info("peaks.miss", extra={"recording_sid": sid, "format": fmt, "enqueued": enqueued})
    return _come_back(sid, "pending", RETRY_AFTER_SECONDS)


def _gone(sid: str, state: str, reason: str, **facts: object):
    response = jsonify(sid=sid, status=state, **facts, reason=reason)
    response.status_code = 404
    response.headers["Cache-Control"] = "no-store"
    return response


def _come_back(sid: str, state: str, seconds: int):
    response = jsonify(sid=sid, status=state, retry_after=seconds)
    response.status_code = 202
    response.headers["Retry-After"] = str(seconds)
    response.headers["Cache-Control"] = "no-store"
    return response
