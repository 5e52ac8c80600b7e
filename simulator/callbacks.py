"""Play Twilio's side of a recorded call: signed status callbacks to the service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from twilio.request_validator import RequestValidator

from simulator.audio import MEDIA_TYPES
from simulator.resources import API_VERSION, rfc2822

CALL_STATUS_PATH = "/twilio/call-status"
RECORDING_STATUS_PATH = "/twilio/recording-status"
CALLBACK_TIMEOUT = 15  # seconds; Twilio gives webhooks 15 s by default
CONTROL_TIMEOUT = 120  # creating a call hashes the media, which takes a while for GiBs


def sign(url: str, params: Mapping[str, str], token: str) -> str:
    """Return the X-Twilio-Signature Twilio would send for this POST."""
    return RequestValidator(token).compute_signature(url, dict(params))


def post_callback(
    url: str, params: Mapping[str, str], token: str, session: requests.Session | None = None
) -> requests.Response:
    """POST a form-encoded, signed webhook the way Twilio does."""
    headers = {
        "X-Twilio-Signature": sign(url, params, token),
        "User-Agent": "TwilioProxy/1.1",
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "X-Home-Region": "us1",
    }
    if session is not None:
        return session.post(url, data=dict(params), headers=headers, timeout=CALLBACK_TIMEOUT)
    with requests.Session() as http:
        return http.post(url, data=dict(params), headers=headers, timeout=CALLBACK_TIMEOUT)


def _geo(prefix: str) -> dict[str, str]:
    # Twilio sends these even when it knows nothing, as empty strings.
    return {f"{prefix}City": "", f"{prefix}State": "", f"{prefix}Zip": "", f"{prefix}Country": "US"}


# A call's progress events in the order Twilio sends them (statusCallbackEvent
# initiated ringing answered completed), each with the next SequenceNumber.
CALL_PROGRESS = ("initiated", "ringing", "in-progress", "completed")


def call_status_params(
    call: Mapping[str, Any], account_sid: str, status: str = "completed", sequence: int = 3
) -> dict[str, str]:
    """Return the form fields of one call-status callback for ``call`` (the length on ``completed`` only)."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call["sid"],
        "CallStatus": status,
        "Direction": call["direction"],
        "From": call["from"],
        "Caller": call["from"],
        "To": call["to"],
        "Called": call["to"],
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(sequence),
        "Timestamp": rfc2822(datetime.now(UTC)),
    }
    if status == "completed":
        params["CallDuration"] = params["Duration"] = str(call["duration"])
    for prefix in ("From", "To", "Caller", "Called"):
        params |= _geo(prefix)
    if call.get("parent_call_sid"):
        params["ParentCallSid"] = call["parent_call_sid"]
    return params


def recording_status_params(
    recording: Mapping[str, Any], sim_url: str, account_sid: str, status: str
) -> dict[str, str]:
    """Return the form fields of a recording-status callback (``in-progress``/``completed``)."""
    # A conference's recording comes with its ConferenceSid and no call leg.
    owner = {"ConferenceSid": recording["conference_sid"]} if recording.get("conference_sid") else {}
    params = {
        "AccountSid": account_sid,
        **({"CallSid": recording["call_sid"]} if recording.get("call_sid") else owner),
        "RecordingSid": recording["sid"],
        # Twilio sends the media URL without an extension.
        "RecordingUrl": (f"{sim_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Recordings/{recording['sid']}"),
        "RecordingStatus": status,
        "RecordingChannels": str(recording["channels"]),
        "RecordingStartTime": recording["start_time"],
        "RecordingSource": recording["source"],
        "RecordingTrack": "both",  # <Record> and <Dial record> record both sides
        "ErrorCode": str(recording.get("error_code") or 0) if status in ("absent", "failed") else "0",
    }
    if recording.get("encryption_details"):
        params["EncryptionDetails"] = json.dumps(recording["encryption_details"])
    if status == "completed":  # the length is unknown while recording
        params["RecordingDuration"] = recording["duration"]
    return params


def _callback_plan(
    created: Mapping[str, Any], sim_url: str, account_sid: str, recording_url: str, call_url: str
) -> list[dict[str, Any]]:
    """Return the webhooks Twilio would send for a created call, in order.

    As on a real ``<Dial record>`` call: each leg's initiated, ringing and
    in-progress call status (the parent first), recording ``in-progress``, the
    child leg's and then the parent's ``completed``, recording ``completed``.
    """
    recordings = created["recordings"]
    legs = [leg for leg in (created["child_call"], created["call"]) if leg is not None]

    def progress(leg: Mapping[str, Any], sequence: int) -> dict[str, Any]:
        status = CALL_PROGRESS[sequence]
        return {
            "kind": "call-status",
            "event": status,
            "sid": leg["sid"],
            "url": call_url,
            "params": call_status_params(leg, account_sid, status, sequence),
        }

    return [
        *(progress(leg, sequence) for leg in reversed(legs) for sequence in range(3)),
        *(
            {
                "kind": "recording-status",
                "event": "in-progress",
                "sid": rec["sid"],
                "url": recording_url,
                "params": recording_status_params(rec, sim_url, account_sid, "in-progress"),
            }
            for rec in recordings
        ),
        *(progress(leg, 3) for leg in legs),
        *(
            {
                "kind": "recording-status",
                "event": rec.get("status", "completed"),
                "sid": rec["sid"],
                "url": recording_url,
                "params": recording_status_params(rec, sim_url, account_sid, rec.get("status", "completed")),
            }
            for rec in recordings
        ),
    ]


def place_call(
    sim_url: str,
    service_url: str,
    account_sid: str,
    auth_token: str,
    *,
    size: int = 65_536,
    child: bool = False,
    fmt: str = "mp3",
    recording_status_path: str = RECORDING_STATUS_PATH,
    call_status_path: str = CALL_STATUS_PATH,
    session: requests.Session | None = None,
    **knobs: Any,
) -> dict[str, Any]:
    """Create a call on the simulator, then send the service Twilio's callbacks.

    ``knobs`` go to ``POST /_sim/calls`` unchanged. Returns that call JSON plus
    ``callbacks`` (what was sent and the HTTP status each got),
    ``callback_statuses`` and ``expected`` (size and sha256 of the latest
    recording in ``fmt``).
    """
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"fmt must be one of {sorted(MEDIA_TYPES)}")
    http = session or requests.Session()
    try:
        reply = http.post(
            f"{sim_url.rstrip('/')}/_sim/calls",
            timeout=CONTROL_TIMEOUT,
            json={"size": size, "child": child, "account_sid": account_sid, **knobs},
        )
        if reply.status_code != 201:
            raise RuntimeError(f"simulator refused the call: {reply.status_code} {reply.text}")
        created: dict[str, Any] = reply.json()
        plan = _callback_plan(
            created,
            sim_url,
            account_sid,
            service_url.rstrip("/") + recording_status_path,
            service_url.rstrip("/") + call_status_path,
        )
        callbacks = []
        for hook in plan:
            response = post_callback(hook["url"], hook.pop("params"), auth_token, http)
            callbacks.append({**hook, "status_code": response.status_code})
    finally:
        if session is None:
            http.close()
    latest = created["recordings"][-1] if created["recordings"] else None
    return {
        **created,
        "expected": {"fmt": fmt, **latest[fmt]} if latest else None,
        "callbacks": callbacks,
        "callback_statuses": [hook["status_code"] for hook in callbacks],
    }
