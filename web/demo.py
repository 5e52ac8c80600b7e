"""Demo mode only: a page that plays the cached recordings and places calls.

Open without authentication, so it is registered only when no Twilio
credentials are configured (the operator's local development set-up).
"""

from __future__ import annotations

import os

from flask import Blueprint, jsonify, render_template, request

from worker import catalog
from worker.sids import is_sid

from . import services

bp = Blueprint("demo", __name__)

RECENT = 25
MAX_WATCHED = 25


def _recent_recordings(root, fmt: str) -> list[str]:
    """RecordingSids of the newest sidecars on the volume."""
    suffix = f".{fmt}.json"
    entries = [entry for entry in os.scandir(root) if entry.name.startswith("RE") and entry.name.endswith(suffix)]
    entries.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    return [entry.name[: -len(suffix)] for entry in entries[:RECENT]]


@bp.get("/")
def page():
    """The demo page; the browser loads recordings only when played."""
    return render_template("demo.html")


@bp.get("/demo/recordings.json")
def recordings():
    """Recent recordings plus the SIDs the page watches, each with a signed URL."""
    svc = services()
    fmt = svc.settings.recording_format
    watched = [sid for sid in request.args.getlist("sid")[:MAX_WATCHED] if is_sid(sid, "RE") or is_sid(sid, "CA")]
    sids = list(dict.fromkeys(watched + _recent_recordings(svc.settings.recordings_dir, fmt)))
    return jsonify(recordings=[catalog.describe(svc.settings, svc.redis, sid, fmt) for sid in sids])
