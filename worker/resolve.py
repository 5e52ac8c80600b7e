"""Resolve a CallSid (parent or child leg) to the recording to play.

Twilio files a ``<Dial>`` recording under the parent call, while a UI often
only knows the child leg. The parent is known from the call-status webhook
(``ParentCallSid``, kept on the volume) or looked up through the REST API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from . import storage
from .config import Settings
from .errors import RecordingNotFound, UpstreamError
from .sids import is_sid, require_sid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallRecording:
    """The recording chosen for a call, and the call it was filed under."""

    recording_sid: str
    owner_call_sid: str
    recorded_at: str | None


def _twilio_call(func, *args, **kwargs):
    """Run a twilio-package call, mapping its failures onto ours."""
    try:
        return func(*args, **kwargs)
    except TwilioRestException as exc:
        if exc.status == 404:
            raise RecordingNotFound(f"Twilio does not know {exc.uri}") from None
        raise UpstreamError(f"Twilio answered {exc.status}") from exc
    except (TwilioException, requests.RequestException) as exc:
        raise UpstreamError(f"Twilio lookup failed: {type(exc).__name__}") from exc


def _latest_completed(client: Client, call_sid: str) -> CallRecording | None:
    recordings = _twilio_call(client.recordings.list, call_sid=call_sid, limit=50)
    done = [rec for rec in recordings if rec.status == "completed" and is_sid(rec.sid, "RE")]
    if not done:
        return None
    latest = max(done, key=lambda rec: rec.start_time or rec.date_created)
    when = latest.start_time or latest.date_created
    return CallRecording(latest.sid, call_sid, when.isoformat(timespec="seconds") if when else None)


def resolve_call(call_sid: str, settings: Settings, client: Client) -> CallRecording:
    """The latest completed recording of the call, or of its parent call.

    Raises RecordingNotFound when neither leg has a completed recording.
    """
    require_sid(call_sid, "CA")
    root = settings.recordings_dir
    parent = storage.parent_of(root, call_sid)
    if parent is None:
        found = _latest_completed(client, call_sid)
        if found:
            return found
        call = _twilio_call(client.calls(call_sid).fetch)
        parent = call.parent_call_sid
        if not parent:
            raise RecordingNotFound(f"call {call_sid} has no completed recording")
        storage.record_leg(root, call_sid, require_sid(parent, "CA", "parent_call_sid"))
        log.info("call.leg_looked_up", extra={"call_sid": call_sid, "parent_call_sid": parent})
    found = _latest_completed(client, parent)
    if found is None:
        raise RecordingNotFound(f"neither {call_sid} nor its parent {parent} has a completed recording")
    return found
