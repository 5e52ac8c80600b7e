"""What the service knows about a SID: the answer of ``/api/recordings/<sid>``."""

from __future__ import annotations

import redis

from . import status, tiers
from .config import Settings
from .signing import signed_peaks_url, signed_url


def describe(settings: Settings, r: redis.Redis, sid: str, fmt: str, tier: tiers.Tier | None = None) -> dict:
    """Status (cached/pending/downloading/failed/unknown) and a fresh signed URL."""
    tier = tier or tiers.for_settings(settings)
    info: dict = {
        "sid": sid,
        "format": fmt,
        "status": "unknown",
        "recording_sid": sid if sid.startswith("RE") else None,
        "call_sid": sid if sid.startswith("CA") else None,
        "conference_sid": sid if sid.startswith("CF") else None,
        "bytes": None,
        "url": signed_url(sid, fmt, settings.playback_signing_key, settings.playback_url_ttl),
    }
    recording_sid = tier.resolve(sid, fmt)
    if recording_sid or sid.startswith("RE"):
        # Like ``url``, given before the peaks exist: the player asks, and gets 202 until they do.
        info["peaks_url"] = signed_peaks_url(
            recording_sid or sid, settings.playback_signing_key, settings.playback_url_ttl
        )
    if recording_sid:
        facts = tier.facts(recording_sid, fmt)
        info.update(
            status="cached",
            recording_sid=recording_sid,
            call_sid=info["call_sid"] or (facts and facts.call_sid),
            conference_sid=info["conference_sid"] or (facts and facts.conference_sid),
            account_sid=facts and facts.account_sid,
            bytes=tier.size(recording_sid, fmt),
            sha256=facts and facts.sha256,
            channels=facts and facts.channels,
            downloaded_at=facts and facts.downloaded_at,
        )
        if facts and facts.peaks:
            info.update(
                peaks=facts.peaks,
                duration_s=facts.duration_s,
                talk_s=facts.talk_s,
                silence_s=facts.silence_s,
                peaks_error=facts.peaks_error,
            )
        info["source"] = (status.last_webhook(r, recording_sid) or {}).get("source")  # as its callback said
        return info
    if sid.startswith("RE"):
        webhook = status.last_webhook(r, sid)
        if webhook:
            info["call_sid"] = webhook.get("call_sid")
            info["twilio_status"] = webhook.get("status")
            info["account_sid"] = webhook.get("account_sid") or settings.twilio_account_sid
            info["source"] = webhook.get("source")
    if sid.startswith("RE") and status.is_downloading(r, sid, fmt):
        info["status"] = "downloading"
        return info
    state = status.get_state(r, sid, fmt)
    if state and state.get("final"):  # Twilio's own absent or failed
        info.update(status=state["status"], error_code=state.get("error_code"), error=state.get("error"))
    elif state and state["status"] == "failed":
        info.update(status="failed", error=state.get("error"))
    elif status.is_queued(r, sid, fmt):
        info["status"] = "pending"
    return info


def is_known_missing(r: redis.Redis, sid: str, fmt: str) -> bool:
    """True when a worker asked Twilio recently and Twilio does not have it."""
    state = status.get_state(r, sid, fmt)
    return bool(state and state["status"] == "not_found")
