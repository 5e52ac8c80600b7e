"""Twilio JSON shapes: Recording, Call, Account resources and error bodies."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from simulator.state import Call, Recording

API_VERSION = "2010-04-01"
# Twilio reports prices as negative charges, per started minute.
RECORDING_PRICE_PER_MINUTE = 0.0025
CALL_PRICE_PER_MINUTE = 0.0085


class ApiError(Exception):
    """An error answered as Twilio's JSON error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Return Twilio's error JSON body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def not_found(path: str) -> ApiError:
    """Return the 20404 error Twilio gives for an unknown resource."""
    return ApiError(404, 20404, f"The requested resource {path} was not found")


def rfc2822(when: datetime) -> str:
    """Format like Twilio's resource dates: 'Fri, 14 Oct 2016 21:56:34 +0000'."""
    return format_datetime(when.replace(microsecond=0))


def formatted_number(number: str) -> str:
    """Format a +1 NANP number the way Twilio's *_formatted fields do."""
    digits = number.removeprefix("+1")
    if len(digits) != 10 or not digits.isdigit():
        return number
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def account_uri(account_sid: str) -> str:
    """Return the account's base path under the 2010 API."""
    return f"/{API_VERSION}/Accounts/{account_sid}"


def recording_json(rec: Recording, api_base_url: str) -> dict[str, Any]:
    """Return the Recording resource exactly as Twilio shapes it."""
    base = f"{account_uri(rec.account_sid)}/Recordings/{rec.sid}"
    ready = rec.is_ready()
    minutes = math.ceil(rec.duration / 60)
    if rec.deleted:
        status = "deleted"
    elif rec.final_status:
        # The resource has no "failed": a recording whose callback said failed shows absent, with its error_code.
        status, ready = "absent", False
    else:
        status = "completed" if ready else "processing"
    return {
        "account_sid": rec.account_sid,
        "api_version": API_VERSION,
        "call_sid": rec.call_sid,
        "conference_sid": rec.conference_sid,
        "date_created": rfc2822(rec.date_created),
        "date_updated": rfc2822(rec.date_created + timedelta(seconds=rec.duration)),
        "start_time": rfc2822(rec.date_created),
        # While processing Twilio has no length or price yet.
        "duration": str(rec.duration) if ready else "-1",
        "sid": rec.sid,
        "price": f"{-RECORDING_PRICE_PER_MINUTE * minutes:.5f}" if ready else None,
        "price_unit": "USD",
        "status": status,
        "channels": rec.channels,
        "source": rec.source,
        "error_code": rec.error_code,
        "uri": f"{base}.json",
        "encryption_details": rec.sealed.details() if rec.sealed else None,
        "subresource_uris": {
            "add_on_results": f"{base}/AddOnResults.json",
            "transcriptions": f"{base}/Transcriptions.json",
        },
        # No extension: Twilio's media_url serves WAV unless .mp3 is appended.
        "media_url": f"{api_base_url.rstrip('/')}{base}",
    }


def call_recording_json(rec: Recording, api_base_url: str) -> dict[str, Any]:
    """The same recording as ``Calls/{CallSid}/Recordings`` shapes it (Twilio's call_recording):
    a call-scoped uri, the ``track``, a numeric price, no media_url or subresource_uris."""
    full = recording_json(rec, api_base_url)
    price = full["price"]
    return {
        **{key: full[key] for key in _CALL_RECORDING_FIELDS},
        "price": float(price) if price is not None else None,
        "uri": f"{account_uri(rec.account_sid)}/Calls/{rec.call_sid}/Recordings/{rec.sid}.json",
        "track": "both",  # <Dial record> and <Record> record both sides
    }


_CALL_RECORDING_FIELDS = (
    "account_sid", "api_version", "call_sid", "conference_sid", "date_created", "date_updated", "start_time",
    "duration", "sid", "encryption_details", "price_unit", "status", "channels", "source", "error_code",
)  # fmt: skip

_CALL_SUBRESOURCES = {
    "feedback": "Feedback.json",
    "feedback_summaries": "FeedbackSummary.json",
    "notifications": "Notifications.json",
    "recordings": "Recordings.json",
    "streams": "Streams.json",
    "payments": "Payments.json",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions.json",
    "user_defined_messages": "UserDefinedMessages.json",
    "events": "Events.json",
    "siprec": "Siprec.json",
    "transcriptions": "Transcriptions.json",
}


def call_json(call: Call) -> dict[str, Any]:
    """Return the Call resource exactly as Twilio shapes it."""
    base = f"{account_uri(call.account_sid)}/Calls/{call.sid}"
    start = call.date_created + timedelta(seconds=1)
    return {
        "date_updated": rfc2822(start + timedelta(seconds=call.duration)),
        "price_unit": "USD",
        "parent_call_sid": call.parent_call_sid,
        "caller_name": None,
        "duration": str(call.duration),
        "from": call.from_,
        "to": call.to,
        "answered_by": None,
        "sid": call.sid,
        "queue_time": "0",
        "price": f"{-CALL_PRICE_PER_MINUTE * math.ceil(call.duration / 60):.5f}",
        "api_version": API_VERSION,
        "status": call.status,
        "direction": call.direction,
        "start_time": rfc2822(start),
        "date_created": rfc2822(call.date_created),
        "from_formatted": formatted_number(call.from_),
        "group_sid": None,
        "trunk_sid": None,
        "forwarded_from": None,
        "uri": f"{base}.json",
        "account_sid": call.account_sid,
        "end_time": rfc2822(start + timedelta(seconds=call.duration)),
        "to_formatted": formatted_number(call.to),
        # Only inbound parent legs arrive on one of the account's numbers.
        "phone_number_sid": None if call.parent_call_sid else "PN" + call.sid[2:],
        "subresource_uris": {k: f"{base}/{v}" for k, v in _CALL_SUBRESOURCES.items()},
    }


def account_json(account_sid: str, auth_token: str, created: datetime, owner: str | None = None) -> dict[str, Any]:
    """Return the Account resource (the auth token included, as its owner's credentials see it)."""
    base = account_uri(account_sid)
    return {
        "auth_token": auth_token,
        "sid": account_sid,
        "owner_account_sid": owner or account_sid,
        "friendly_name": "Recording Cache simulator" if account_sid == owner else f"Subaccount {account_sid[-6:]}",
        "status": "active",
        "type": "Full",
        "date_created": rfc2822(created),
        "date_updated": rfc2822(created),
        "uri": f"{base}.json",
        "subresource_uris": {
            "calls": f"{base}/Calls.json",
            "recordings": f"{base}/Recordings.json",
        },
    }
