"""Control API (no auth) under /_sim/: create calls, turn knobs, read stats."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from flask import Blueprint, Response, request

from simulator.audio import duration_seconds, media_sha256
from simulator.context import sim
from simulator.encryption import load_public_key, seal
from simulator.knobs import KNOB_NAMES, Knobs, apply_knobs
from simulator.media import exact_media_response
from simulator.resources import call_json, rfc2822
from simulator.state import Call, Recording, new_sid

bp = Blueprint("control", __name__, url_prefix="/_sim")

MIN_SIZE = 1024  # below ~2 MP3 frames FFmpeg (and so Chromium) won't detect MP3
MAX_SIZE = 2**32 - 1  # RIFF sizes are 32-bit
MAX_RECORDINGS = 1000
_DEFAULTS: dict[str, Any] = {
    "size": 65_536,
    "recording": True,
    "recordings": 1,
    "child": False,
    "date_created": None,
    "from": "+15558675310",
    "to": "+15017122661",
    "status": "completed",
    "error_code": None,
    "conference": False,
    "channels": None,  # as Twilio records: 2 for a call, 1 for a conference
    "encrypted": None,  # a public key SID from POST /_sim/keys: Voice Recording Encryption
    "account_sid": None,  # a subaccount from POST /_sim/subaccounts; the main account by default
}
# The ErrorCode Twilio gives a recording that ends with each status, unless the body names one.
_FINAL_ERROR_CODES = {"completed": None, "absent": 16101, "failed": 16104}
_CHILD_TO = "+15005550006"  # the number the <Dial> rings
_PATCH_FIELDS = KNOB_NAMES | {"ready"}


class ControlError(Exception):
    """A bad control request, answered as ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@bp.errorhandler(ControlError)
def _control_error(error: ControlError) -> tuple[dict[str, str], int]:
    return {"error": str(error)}, error.status


def _fail(message: str, status: int = 400) -> NoReturn:
    raise ControlError(message, status)


def _body(allowed: frozenset[str] | set[str]) -> dict[str, Any]:
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        _fail("body must be a JSON object")
    unknown = sorted(body.keys() - allowed)
    if unknown:
        _fail(f"unknown field(s): {', '.join(unknown)}")
    return body


def _int_field(body: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name, _DEFAULTS[name])
    # bool is an int subclass; reject it where a count is expected.
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(f"{name} must be an integer")
    if not low <= value <= high:
        _fail(f"{name} must be between {low} and {high}")
    return value


def _field(body: Mapping[str, Any], name: str, kind: type[bool] | type[str]) -> Any:
    value = body.get(name, _DEFAULTS[name])
    if not isinstance(value, kind):
        _fail(f"{name} must be {'true or false' if kind is bool else 'a string'}")
    return value


def _date_created(body: Mapping[str, Any]) -> datetime:
    raw = body.get("date_created")
    if raw is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        when = datetime.fromisoformat(str(raw))
    except ValueError:
        _fail("date_created must be an ISO 8601 date-time")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _lifecycle(body: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """(final status, ErrorCode) of the call's recordings: None for ``completed``."""
    status = _field(body, "status", str)
    if status not in _FINAL_ERROR_CODES:
        _fail(f"status must be one of {', '.join(_FINAL_ERROR_CODES)}")
    code = body.get("error_code", _FINAL_ERROR_CODES[status])
    if code is not None and (not isinstance(code, int) or isinstance(code, bool) or not 0 < code < 100_000):
        _fail("error_code must be an integer between 1 and 99999")
    if status == "completed":
        return None, None
    return status, code


def _recording_summary(rec: Recording) -> dict[str, Any]:
    return {
        "sid": rec.sid,
        "call_sid": rec.call_sid,
        "conference_sid": rec.conference_sid,
        "duration": str(rec.duration),
        "source": rec.source,
        "channels": rec.channels,
        "status": rec.final_status or "completed",
        "error_code": rec.error_code,
        "encryption_details": rec.sealed.details() if rec.sealed else None,
        "start_time": rfc2822(rec.date_created),
        "size": rec.size,
        # As recorded (GET /_sim/media/<sid>.<fmt>?channels=N gives the RequestedChannels=N bytes).
        "mp3": {"size": rec.size, "sha256": media_sha256("mp3", rec.size, rec.sid, rec.channels)},
        "wav": {"size": rec.size, "sha256": media_sha256("wav", rec.size, rec.sid, rec.channels)},
        "knobs": rec.knobs.to_dict(),
    }


@bp.post("/calls")
def create_call() -> tuple[dict[str, Any], int]:
    """Create a call (and optionally a child leg and recordings)."""
    body = _body(KNOB_NAMES | _DEFAULTS.keys())
    size = _int_field(body, "size", MIN_SIZE, MAX_SIZE)
    count = _int_field(body, "recordings", 0, MAX_RECORDINGS)
    if not _field(body, "recording", bool):
        count = 0
    with_child = _field(body, "child", bool)
    caller, number = _field(body, "from", str), _field(body, "to", str)
    try:
        knobs = apply_knobs(Knobs(), body)
    except ValueError as error:
        _fail(str(error))
    created = _date_created(body)
    final_status, error_code = _lifecycle(body)

    ctx = sim()
    account = body.get("account_sid") or ctx.account_sid
    if ctx.token_of(account) is None:
        _fail("account_sid must be the simulated account or one of its subaccounts")
    duration = duration_seconds(size)
    parent = ctx.store.add_call(
        account,
        created,
        parent_call_sid=None,
        from_=caller,
        to=number,
        direction="inbound",
        status="completed",
        duration=duration + 2,
    )
    child: Call | None = None
    if with_child:
        child = ctx.store.add_call(
            account,
            created,
            parent_call_sid=parent.sid,
            from_=caller,
            to=_CHILD_TO,
            direction="outbound-dial",
            status="completed",
            duration=duration,
        )
    # Twilio files <Dial> recordings under the parent call, never the child leg;
    # a conference's recordings under the conference, with no call at all.
    conference_sid = new_sid("CF") if _field(body, "conference", bool) else None
    source = "StartConferenceRecordingAPI" if conference_sid else "DialVerb" if child else "RecordVerb"
    key_sid = body.get("encrypted")
    if key_sid is not None and key_sid not in ctx.public_keys:
        _fail("encrypted must name a public key registered with POST /_sim/keys")
    channels = body.get("channels") or (1 if conference_sid else 2)
    if channels not in (1, 2) or isinstance(channels, bool):
        _fail("channels must be 1 or 2")
    recordings = [
        ctx.store.add_recording(
            parent,
            size=size,
            duration=duration,
            source=source,
            knobs=knobs,
            final_status=final_status,
            error_code=error_code,
            conference_sid=conference_sid,
            channels=channels,
            sealed=seal(key_sid, ctx.public_keys[key_sid]) if key_sid else None,
        )
        for _ in range(count)
    ]
    return {
        "account_sid": account,
        "call_sid": parent.sid,
        "child_call_sid": child.sid if child else None,
        "conference_sid": conference_sid,
        "recording_sids": [rec.sid for rec in recordings],
        "recording_sid": recordings[-1].sid if recordings else None,
        "recordings": [_recording_summary(rec) for rec in recordings],
        "call": call_json(parent),
        "child_call": call_json(child) if child else None,
    }, 201


@bp.route("/recordings/<sid>", methods=["GET", "PATCH"])
def recording_knobs(sid: str) -> dict[str, Any]:
    """Show or change one recording's knobs (PATCH also takes ``ready``)."""
    store = sim().store
    if request.method == "GET":
        rec = store.recording(None, sid, include_deleted=True)
    else:
        try:
            rec = store.update_recording(sid, _body(_PATCH_FIELDS))
        except ValueError as error:
            _fail(str(error))
    if rec is None:
        _fail(f"no recording {sid}", 404)
    return rec.control_state()


@bp.get("/stats")
def stats() -> dict[str, Any]:
    """Return the request counters."""
    return {**sim().stats.snapshot(), "concurrency": sim().concurrency.snapshot()}


@bp.post("/subaccounts")
def add_subaccount() -> tuple[dict[str, Any], int]:
    """Create a subaccount of the simulated account: its SID and auth token."""
    ctx = sim()
    sid, token = new_sid("AC"), secrets.token_hex(16)
    ctx.subaccounts[sid] = token
    return {"account_sid": sid, "auth_token": token, "owner_account_sid": ctx.account_sid}, 201


@bp.post("/keys")
def add_public_key() -> tuple[dict[str, Any], int]:
    """Register a public key recordings may be encrypted for (Twilio's Credential, type public key)."""
    body = _body({"public_key_pem", "public_key_sid"})
    pem, sid = body.get("public_key_pem"), body.get("public_key_sid") or new_sid("CR")
    if not isinstance(pem, str) or not isinstance(sid, str) or not re.fullmatch(r"CR[0-9a-f]{32}", sid):
        _fail("public_key_pem must be PEM text and public_key_sid CR followed by 32 hex digits")
    try:
        sim().public_keys[sid] = load_public_key(pem)
    except ValueError as error:
        _fail(f"public_key_pem: {error}")
    return {"public_key_sid": sid}, 201


@bp.post("/limits")
def limits() -> dict[str, Any]:
    """Set the account's concurrency limit (``max_concurrent``, null for none) and the 429's ``retry_after``."""
    body = _body({"max_concurrent", "retry_after"})
    limit, retry_after = body.get("max_concurrent"), body.get("retry_after")
    for name, value in (("max_concurrent", limit), ("retry_after", retry_after)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            _fail(f"{name} must be a positive integer or null")
    sim().concurrency.configure(limit, retry_after)
    return sim().concurrency.snapshot()


@bp.post("/reset")
def reset() -> dict[str, bool]:
    """Clear counters, and all calls and recordings unless ``stats_only``."""
    stats_only = bool(_body({"stats_only"}).get("stats_only"))
    if not stats_only:
        sim().store.reset()
    sim().stats.reset()
    sim().concurrency.reset()
    return {"ok": True}


@bp.get("/media/<name>")
def exact_media(name: str) -> Response:
    """Stream a recording's true bytes (decrypted; ``?channels=1|2`` as RequestedChannels would): no auth,
    no faults, not counted."""
    sid, _, fmt = name.partition(".")
    rec = sim().store.recording(None, sid, include_deleted=True)
    if rec is None or fmt not in ("mp3", "wav"):
        _fail(f"no media {name}", 404)
    channels = request.args.get("channels")
    if channels not in (None, "1", "2"):
        _fail("channels must be 1 or 2")
    return exact_media_response(rec, fmt, int(channels) if channels else None)


@bp.get("/health")
def health() -> dict[str, Any]:
    """Report liveness and the simulated account."""
    return {"ok": True, "account_sid": sim().account_sid}
