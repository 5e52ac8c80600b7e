"""Twilio's status callbacks: verify the signature, remember, enqueue, answer 204."""

from __future__ import annotations

import hmac
import logging
import time
from functools import cache

from flask import Blueprint, abort, request
from twilio.request_validator import RequestValidator

from worker import accounts, metrics, queue, status, twilio_api
from worker.sids import is_sid, require_sid

from . import services

log = logging.getLogger(__name__)
bp = Blueprint("twilio", __name__, url_prefix="/twilio")

RECORDING_STATUSES = ("in-progress", "completed", "absent", "failed")
# Twilio's recording_enum_source (its OpenAPI description).
RECORDING_SOURCES = (
    "DialVerb", "Conference", "OutboundAPI", "Trunking", "RecordVerb", "StartCallRecordingAPI",
    "StartConferenceRecordingAPI",
)  # fmt: skip


@cache
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


def _signed_by_twilio(token: str, url: str, signature: str) -> bool:
    """RequestValidator's check, exact URL first.

    ``validate`` always computes two HMACs (the URL with and without its
    port); the exact PUBLIC_BASE_URL almost always matches, so try that one
    alone and fall back to the lenient check only when it does not.
    """
    if not signature.isascii():  # base64 always is; hmac.compare_digest raises on other text
        return False
    validator = _validator(token)
    if hmac.compare_digest(validator.compute_signature(url, request.form), signature):
        return True
    return validator.validate(url, request.form, signature)


def _public_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path + query, proxies notwithstanding."""
    query = request.query_string.decode("latin-1")
    return services().settings.public_base_url + request.path + (f"?{query}" if query else "")


def _require_twilio(kind: str) -> str:
    """The AccountSid of a webhook Twilio signed: this service's account or one of its subaccounts,
    each signing with its own auth token."""
    svc = services()
    account_sid = request.form.get("AccountSid", "")
    token = accounts.token(svc.redis, svc.settings, account_sid)
    if token is None:
        metrics.WEBHOOKS.labels(kind, "forbidden").inc()
        if is_sid(account_sid, "AC") and accounts.claim_sync(svc.redis):
            svc.publisher.push("accounts.sync", [])  # a new subaccount is known for its next webhook
        log.warning("webhook.unknown_account", extra={"kind": kind, "account_sid": account_sid[:40]})
        abort(403, "AccountSid is neither this service's account nor a known subaccount of it")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not _signed_by_twilio(token, _public_url(), signature):
        metrics.WEBHOOKS.labels(kind, "forbidden").inc()
        log.warning("webhook.bad_signature", extra={"kind": kind, "remote": request.remote_addr})
        abort(403, "invalid X-Twilio-Signature")
    return account_sid


def _recorded_at(raw: str | None) -> str | None:
    """RecordingStartTime (RFC 2822, as Twilio sends it) as sortable ISO time."""
    if not raw:
        return None
    try:
        return twilio_api.iso_time(raw)
    except ValueError:
        abort(400, f"RecordingStartTime is not an RFC 2822 date: {raw!r}")


def _owner_sid(form) -> str:
    """What the recording is filed under: its CallSid, or for a conference's
    recording (which Twilio sends without a call leg) its ConferenceSid."""
    if form.get("CallSid") or not form.get("ConferenceSid"):
        return require_sid(form.get("CallSid"), "CA", "CallSid")
    return require_sid(form.get("ConferenceSid"), "CF", "ConferenceSid")


def _check_choice(form, field: str, allowed: tuple[str, ...]) -> None:
    """400 naming ``field`` when Twilio's callback carries a value it never sends."""
    value = form.get(field)
    if value is not None and value not in allowed:
        abort(400, f"{field} must be one of {', '.join(allowed)}, got {value[:20]!r}")


def _error_code() -> int | None:
    """ErrorCode of a recording callback (16101 too short, 16102 silent…); Twilio sends "0" for none."""
    raw = request.form.get("ErrorCode", "")
    if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        abort(400, f"ErrorCode must be a number, got {raw[:20]!r}")
    return int(raw) if raw and int(raw) else None


@bp.post("/recording-status")
def recording_status():
    """Twilio's recordingStatusCallback: on ``completed``, enqueue the download."""
    started = time.monotonic()
    account_sid = _require_twilio("recording")
    form = request.form
    recording_sid = require_sid(form.get("RecordingSid"), "RE", "RecordingSid")
    owner_sid = _owner_sid(form)
    recording_status = form.get("RecordingStatus")
    if recording_status not in RECORDING_STATUSES:
        abort(400, f"RecordingStatus must be one of {', '.join(RECORDING_STATUSES)}, got {recording_status!r}")
    recorded_at = _recorded_at(form.get("RecordingStartTime"))
    error_code = _error_code()
    _check_choice(form, "RecordingChannels", ("1", "2"))
    _check_choice(form, "RecordingTrack", ("inbound", "outbound", "both"))
    _check_choice(form, "RecordingSource", RECORDING_SOURCES)
    source = form.get("RecordingSource")
    settings, svc = services().settings, services()
    url = form.get("RecordingUrl", "")
    if url and not twilio_api.is_twilio_url(settings, url):
        # Never fetched anyway: media URLs are built from TWILIO_API_BASE_URL.
        log.warning("webhook.foreign_recording_url", extra={"recording_sid": recording_sid, "host": url[:100]})
    enqueued = False
    if recording_status == "completed":
        enqueued = queue.enqueue_fetch(
            svc.publisher,
            recording_sid,
            settings.recording_format,
            "webhook",
            owner_sid,
            recorded_at,
            webhook_status=recording_status,
            account_sid=None if account_sid == settings.twilio_account_sid else account_sid,
            source=source,
        )
    else:
        status.remember_webhook(svc.redis, recording_sid, recording_status, owner_sid, source)
        if recording_status in status.FINAL_STATUSES:  # never any media: players get 404, no fetch
            status.set_final(svc.redis, recording_sid, settings.recording_format, recording_status, error_code)
    metrics.WEBHOOKS.labels("recording", recording_status).inc()
    log.info(
        "webhook.recording_status",
        extra={
            "recording_sid": recording_sid,
            "call_sid" if owner_sid.startswith("CA") else "conference_sid": owner_sid,
            "recording_status": recording_status,
            "enqueued": enqueued,
            "ms": round((time.monotonic() - started) * 1000, 2),
        },
    )
    return "", 204


@bp.post("/call-status")
def call_status():
    """Twilio's call statusCallback: remember child legs' ParentCallSid."""
    _require_twilio("call")
    form = request.form
    call_sid = require_sid(form.get("CallSid"), "CA", "CallSid")
    parent = form.get("ParentCallSid")
    if parent:
        parent = require_sid(parent, "CA", "ParentCallSid")
        svc = services()
        queue.enqueue_leg(svc.publisher, call_sid, parent, svc.settings.recording_format)
    metrics.WEBHOOKS.labels("call", "child" if parent else "parent").inc()
    log.info(
        "webhook.call_status",
        extra={"call_sid": call_sid, "parent_call_sid": parent, "call_status": form.get("CallStatus")},
    )
    return "", 204
