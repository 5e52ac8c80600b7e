"""The host application's API, behind ``Authorization: Bearer $API_TOKEN``."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, jsonify, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from worker import catalog, queue
from worker.sids import require_format, require_playable_sid

from . import services

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")
_BEARER = WWWAuthenticate("Bearer", {"realm": "recording-cache"})


@bp.before_request
def require_token() -> None:
    """401 without a bearer token, 403 with a wrong one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send Authorization: Bearer <API_TOKEN>", www_authenticate=_BEARER)
    if not hmac.compare_digest(token.encode(), services().settings.api_token.encode()):
        abort(403, "wrong API token")


@bp.after_request
def not_cached(response):
    """Answers carry freshly signed playback URLs: no cache keeps them."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _format() -> str:
    return require_format(request.args.get("format", services().settings.recording_format))


@bp.get("/recordings/<sid>")
def get_recording(sid: str):
    """Status of a recording or call, with a freshly signed playback URL."""
    sid = require_playable_sid(sid)
    svc = services()
    return jsonify(catalog.describe(svc.settings, svc.redis, sid, _format(), svc.tier))


@bp.post("/recordings/<sid>/fetch")
def fetch_recording(sid: str):
    """Enqueue a fetch (idempotent); 202 with the current status."""
    sid = require_playable_sid(sid)
    svc, fmt = services(), _format()
    info = catalog.describe(svc.settings, svc.redis, sid, fmt, svc.tier)
    if info["status"] != "cached":
        info["enqueued"] = queue.enqueue_fetch(svc.publisher, sid, fmt, "api")
        log.info("api.fetch", extra={"sid": sid, "format": fmt, "enqueued": info["enqueued"]})
        if info["status"] in ("unknown", "failed"):
            info["status"] = "pending"
    return jsonify(info), 200 if info["status"] == "cached" else 202
