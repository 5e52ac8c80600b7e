"""``POST /_sim/place-call``: the demo page's button, playing Twilio's part.

It creates a call on this simulator and posts the signed callbacks to the
service, exactly like ``make call``; the service's web tier never calls the
simulator (or Twilio) for it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from simulator.callbacks import place_call
from simulator.context import sim

bp = Blueprint("demo", __name__, url_prefix="/_sim")

MAX_DEMO_SIZE = 64 * 1024 * 1024
_KINDS = {"call": {}, "conference": {"conference": True}, "absent": {"status": "absent"}}


@bp.post("/place-call")
def place_demo_call() -> tuple[dict[str, Any], int]:
    """Place a call with one recording; JSON body ``{size, child, throughput, kind}``, all optional.

    ``kind``: ``call`` (two channels, the default), ``conference`` (its
    recording filed under a ConferenceSid, mono) or ``absent`` (Twilio ends it
    16101, too short).
    """
    ctx = sim()
    if not ctx.service_url:
        return {"error": "start the simulator with --service-url to place calls"}, 409
    body = request.get_json(silent=True) or {}
    try:
        size = int(body.get("size", 256 * 1024))
        throughput = int(body.get("throughput", 0))
    except (TypeError, ValueError):
        return {"error": "size and throughput must be whole numbers"}, 400
    if not 1024 <= size <= MAX_DEMO_SIZE or throughput < 0:
        return {"error": f"size must be 1024..{MAX_DEMO_SIZE} and throughput >= 0"}, 400
    kind = body.get("kind", "call")
    if kind not in _KINDS:
        return {"error": f"kind must be one of {', '.join(_KINDS)}"}, 400
    own_url = f"http://{request.environ['SERVER_NAME']}:{request.environ['SERVER_PORT']}"
    call = place_call(
        own_url,
        ctx.service_url,
        ctx.account_sid,
        ctx.auth_token,
        size=size,
        child=bool(body.get("child", False)) and kind == "call",
        throughput=throughput,
        **_KINDS[kind],
    )
    return {
        "call_sid": call["call_sid"],
        "child_call_sid": call["child_call_sid"],
        "conference_sid": call["conference_sid"],
        "recording_sid": call["recording_sid"],
        "callback_statuses": call["callback_statuses"],
    }, 201
