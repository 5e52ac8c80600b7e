"""Demo mode only: a page that plays the cached recordings and places calls.

Open without authentication, so it is registered only when no Twilio
credentials are configured (the operator's local development set-up).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from worker import catalog, sidecar
from worker.sids import is_playable

from . import services

bp = Blueprint("demo", __name__)

RECENT = 25
MAX_WATCHED = 25


@bp.get("/")
def page():
    """The demo page; the browser loads recordings only when played."""
    return render_template("demo.html")


@bp.get("/demo/recordings.json")
def recordings():
    """Recent recordings plus the SIDs the page watches, each with a signed URL."""
    svc = services()
    fmt = svc.settings.recording_format
    watched = [sid for sid in request.args.getlist("sid")[:MAX_WATCHED] if is_playable(sid)]
    sids = list(dict.fromkeys(watched + sidecar.newest(svc.settings.recordings_dir, fmt, RECENT)))
    return jsonify(recordings=[catalog.describe(svc.settings, svc.redis, sid, fmt, svc.tier) for sid in sids])
