"""The Twilio REST API surface: /2010-04-01/Accounts/{AccountSid}/..."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request
from werkzeug.wrappers import Response

from simulator.audio import MEDIA_TYPES
from simulator.context import sim
from simulator.media import media_response
from simulator.paging import build_page, date_filter, parse_page_request
from simulator.resources import (
    API_VERSION,
    ApiError,
    account_json,
    call_json,
    call_recording_json,
    not_found,
    recording_json,
)

bp = Blueprint("api", __name__, url_prefix=f"/{API_VERSION}/Accounts")
account_list_bp = Blueprint("account_list", __name__, url_prefix=f"/{API_VERSION}")

_RECORDING_FILTERS = ("CallSid", "ConferenceSid", "DateCreated", "DateCreated<", "DateCreated>", "IncludeSoftDeleted")
_CALL_FILTERS = ("ParentCallSid", "Status")
# Twilio serves WAV when a recording URL has no extension.
_MEDIA_FORMATS = {"mp3": "mp3", "wav": "wav", "": "wav"}
_KINDS = {
    "api.account": "account_fetch",
    "api.recording_list": "recording_list",
    "api.call_list": "call_list",
    "api.call": "call_fetch",
    "api.call_recording_list": "call_recording_list",
}


def path_kind() -> str:
    """Classify the current request for the stats' ``by_path_kind``."""
    if request.endpoint != "api.recording":
        return _KINDS.get(request.endpoint or "", "unknown")
    if request.method == "DELETE":
        return "recording_delete"
    ext = (request.view_args or {}).get("name", "").partition(".")[2]
    return "recording_fetch" if ext == "json" else "media"


def _own_account(account_sid: str) -> None:
    """The path's account is the caller's own, or one of its subaccounts when the caller is the main account."""
    caller, ctx = g.account, sim()
    if account_sid != caller and not (caller == ctx.account_sid and account_sid in ctx.subaccounts):
        raise not_found(request.path)


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() == "true"


@bp.get("/<account_sid>.json")
def account(account_sid: str) -> dict[str, Any]:
    """Fetch the Account resource."""
    _own_account(account_sid)
    ctx = sim()
    return account_json(account_sid, ctx.token_of(account_sid), ctx.started, owner=ctx.account_sid)


@account_list_bp.get("/Accounts.json")
def account_list() -> dict[str, Any]:
    """The caller's account and, for the main account, its subaccounts (each with its auth token)."""
    ctx, caller = sim(), g.account
    sids = [caller, *sorted(ctx.subaccounts)] if caller == ctx.account_sid else [caller]
    accounts = [account_json(sid, ctx.token_of(sid), ctx.started, owner=ctx.account_sid) for sid in sids]
    uri = f"/{API_VERSION}/Accounts.json"
    return {
        "accounts": accounts,
        "end": len(accounts) - 1,
        "first_page_uri": f"{uri}?PageSize=50&Page=0",
        "next_page_uri": None,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": None,
        "start": 0,
        "uri": f"{uri}?PageSize=50&Page=0",
    }


@bp.get("/<account_sid>/Recordings.json")
def recording_list(account_sid: str) -> dict[str, Any]:
    """List recordings, newest first, with Twilio's filters and paging."""
    _own_account(account_sid)
    return _recording_page(account_sid, request.args.get("CallSid") or None)


@bp.get("/<account_sid>/Calls/<call_sid>/Recordings.json")
def call_recording_list(account_sid: str, call_sid: str) -> dict[str, Any]:
    """List the recordings filed under one call."""
    _own_account(account_sid)
    if sim().store.call(account_sid, call_sid) is None:
        raise not_found(request.path)
    return _recording_page(account_sid, call_sid, call_recording_json)


def _recording_page(account_sid: str, call_sid: str | None, shape=recording_json) -> dict[str, Any]:
    ctx = sim()
    req = parse_page_request(request.args, _RECORDING_FILTERS)
    created_ok = date_filter(request.args)
    recordings = ctx.store.recordings(
        account_sid,
        call_sid=call_sid,
        conference_sid=request.args.get("ConferenceSid") or None,
        include_deleted=_flag("IncludeSoftDeleted"),
    )
    items = [rec for rec in recordings if created_ok(rec.date_created)]
    base_url = ctx.api_base_url()
    return build_page(
        items,
        key="recordings",
        path=request.path,
        req=req,
        render=lambda rec: shape(rec, base_url),
        order_key_of=ctx.store.order_key_of,
    )


@bp.route("/<account_sid>/Recordings/<name>", methods=["GET", "DELETE"])
def recording(account_sid: str, name: str) -> Response | dict[str, Any] | tuple[str, int]:
    """Fetch (.json), download (.mp3, .wav, bare) or delete one recording."""
    _own_account(account_sid)
    ctx = sim()
    sid, _, ext = name.partition(".")
    if request.method == "DELETE":
        if ext not in ("json", "") or not ctx.store.delete_recording(account_sid, sid):
            raise not_found(request.path)
        return "", 204
    if ext == "json":
        rec = ctx.store.recording(account_sid, sid, include_deleted=_flag("IncludeSoftDeleted"))
        if rec is None:
            raise not_found(request.path)
        return recording_json(rec, ctx.api_base_url())
    fmt = _MEDIA_FORMATS.get(ext)
    if fmt is None:
        raise not_found(request.path)
    if request.method == "HEAD":
        # Metadata only (size checks before deleting); not a download, not counted.
        rec = ctx.store.recording(account_sid, sid)
        if rec is None or not rec.is_ready():
            raise not_found(request.path)
        head = Response(status=200, content_type=MEDIA_TYPES[fmt])
        head.headers["Content-Length"] = str(rec.size)
        return head
    requested = request.args.get("RequestedChannels")
    if requested not in (None, "1", "2"):
        raise ApiError(400, 20001, f"RequestedChannels must be 1 or 2, got {requested[:20]!r}")
    ctx.stats.count_media_get(sid, fmt)
    ctx.stats.count_requested_channels(sid, requested)
    outcome, rec = ctx.store.media_turn(account_sid, sid)
    return media_response(outcome, rec, fmt, request.path, ctx.stats, int(requested) if requested else None)


@bp.get("/<account_sid>/Calls.json")
def call_list(account_sid: str) -> dict[str, Any]:
    """List calls, newest first; supports ParentCallSid and Status filters."""
    _own_account(account_sid)
    ctx = sim()
    req = parse_page_request(request.args, _CALL_FILTERS)
    items = ctx.store.calls(
        account_sid,
        parent_call_sid=request.args.get("ParentCallSid") or None,
        status=request.args.get("Status") or None,
    )
    return build_page(
        items, key="calls", path=request.path, req=req, render=call_json, order_key_of=ctx.store.order_key_of
    )


@bp.get("/<account_sid>/Calls/<name>")
def call(account_sid: str, name: str) -> dict[str, Any]:
    """Fetch one Call resource (``CA....json``)."""
    _own_account(account_sid)
    sid, _, ext = name.partition(".")
    found = sim().store.call(account_sid, sid) if ext == "json" else None
    if found is None:
        raise not_found(request.path)
    return call_json(found)
