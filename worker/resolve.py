"""Resolve a CallSid (parent or child leg) to the recording to play.

Twilio files a ``<Dial>`` recording under the parent call, while a UI often
only knows the child leg. The parent is known from the call-status webhook
(``ParentCallSid``, kept on the volume) or looked up through the REST API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import requests
from twilio.rest import Client

from . import fetch, status, storage, tiers
from .config import Settings
from .errors import RecordingNotFound, UpstreamError
from .sids import is_sid, require_sid
from .twilio_api import call_twilio

log = logging.getLogger(__name__)
_UNDATED = datetime.min.replace(tzinfo=UTC)  # sorts before any dated recording


@dataclass(frozen=True)
class CallRecording:
    """The recording chosen for a call, and the call it was filed under."""

    recording_sid: str
    owner_call_sid: str
    recorded_at: str | None


def _when(recording) -> datetime | None:
    when = recording.start_time or recording.date_created
    return when if isinstance(when, datetime) else None  # the twilio package keeps what it cannot parse


def _latest_completed(client: Client, owner_sid: str) -> CallRecording | None:
    """The latest completed recording filed under a call or a conference."""
    owner = {"conference_sid": owner_sid} if is_sid(owner_sid, "CF") else {"call_sid": owner_sid}
    recordings = call_twilio(client.recordings.list, **owner, limit=50)
    done = [rec for rec in recordings if rec.status == "completed" and is_sid(rec.sid, "RE")]
    if not done:
        return None
    latest = max(done, key=lambda rec: _when(rec) or _UNDATED)
    when = _when(latest)
    return CallRecording(latest.sid, owner_sid, when.isoformat(timespec="seconds") if when else None)


def resolve_call(call_sid: str, settings: Settings, client: Client) -> CallRecording:
    """The latest completed recording of the call, or of its parent call.

    A ConferenceSid resolves to the conference's latest completed recording.
    Raises RecordingNotFound when neither leg (nor the conference) has a completed recording.
    """
    if is_sid(call_sid, "CF"):
        found = _latest_completed(client, call_sid)
        if found is None:
            raise RecordingNotFound(f"conference {call_sid} has no completed recording")
        return found
    require_sid(call_sid, "CA")
    root = settings.recordings_dir
    parent = storage.parent_of(root, call_sid)
    if parent is None:
        found = _latest_completed(client, call_sid)
        if found:
            return found
        call = call_twilio(client.calls(call_sid).fetch)
        parent = call.parent_call_sid
        if not parent:
            raise RecordingNotFound(f"call {call_sid} has no completed recording")
        if not is_sid(parent, "CA"):
            raise UpstreamError(f"Twilio gave call {call_sid} a malformed parent_call_sid: {str(parent)[:80]!r}")
        storage.record_leg(root, call_sid, parent)
        log.info("call.leg_looked_up", extra={"call_sid": call_sid, "parent_call_sid": parent})
    found = _latest_completed(client, parent)
    if found is None:
        raise RecordingNotFound(f"neither {call_sid} nor its parent {parent} has a completed recording")
    return found


def fetch_call(
    call_sid: str,
    fmt: str,
    settings: Settings,
    r: redis.Redis,
    session: requests.Session,
    client: Client,
    tier: tiers.Tier | None = None,
) -> fetch.FetchOutcome:
    """Resolve a CallSid (or ConferenceSid) to its latest recording, fetch that once, and link the SID to it."""
    found = resolve_call(call_sid, settings, client)
    tier = tier or tiers.for_settings(settings)
    # fetch_recording links the owner call and its known legs; the leg asked for may be new.
    outcome = fetch.fetch_recording(
        found.recording_sid, fmt, settings, r, session, found.owner_call_sid, found.recorded_at, tier
    )
    tier.link_call(settings, call_sid, found.recording_sid, fmt, found.recorded_at)
    status.clear_state(r, call_sid, fmt)
    return outcome
