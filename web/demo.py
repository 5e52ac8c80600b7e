"""Demo mode only: a page that plays the cached recordings and places calls.

Open without authentication, so it is registered only when no Twilio
credentials are configured (the operator's local development set-up).

The page's script (``web/static/demo.js``) and wavesurfer.js are served from
here, never from a CDN: wavesurfer.js comes from the npm registry, pinned in
``package.json`` and ``package-lock.json``, and ``make install`` (``npm ci``)
puts it under ``node_modules/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, abort, jsonify, render_template, request, send_from_directory

from worker import catalog, sidecar, storage
from worker.sids import is_playable, is_sid

from . import services

log = logging.getLogger(__name__)

bp = Blueprint("demo", __name__, static_folder="static", static_url_path="/demo/static")

RECENT = 25
MAX_WATCHED = 50  # the page watches up to 25 placed calls: the SID it plays by and the recording's
WAVESURFER_DIST = Path(__file__).resolve().parent.parent / "node_modules" / "wavesurfer.js" / "dist"
WAVESURFER_MODULE = "wavesurfer.esm.js"  # one self-contained ES module, no imports of its own


@bp.get("/")
def page():
    """The demo page; the browser loads recordings only when played."""
    return render_template("demo.html")


@bp.get("/demo/vendor/wavesurfer.js")
def wavesurfer():
    """wavesurfer.js as installed by ``npm ci``; 404 (the page plays without waveforms) when it is not."""
    if not (WAVESURFER_DIST / WAVESURFER_MODULE).is_file():
        log.warning("demo.wavesurfer_missing", extra={"path": str(WAVESURFER_DIST), "fix": "make install"})
        abort(404, "wavesurfer.js is not installed: run `make install` (npm ci)")
    return send_from_directory(WAVESURFER_DIST, WAVESURFER_MODULE, mimetype="text/javascript", max_age=3600)


@bp.get("/demo/recordings.json")
def recordings():
    """Recent recordings plus the SIDs the page watches, each with a signed URL and the calls that reach it."""
    svc = services()
    fmt = svc.settings.recording_format
    watched = [sid for sid in request.args.getlist("sid")[:MAX_WATCHED] if is_playable(sid)]
    sids = list(dict.fromkeys(watched + sidecar.newest(svc.settings.recordings_dir, fmt, RECENT)))
    items = [catalog.describe(svc.settings, svc.redis, sid, fmt, svc.tier) for sid in sids]
    for item in items:
        item["calls"] = _calls(svc.settings.recordings_dir, item)
    return jsonify(recordings=items)


def _calls(root: Path, item: dict) -> list[str]:
    """The call and conference SIDs that reach this item's recording: its call, that call's child legs."""
    call, conference = item.get("call_sid"), item.get("conference_sid")
    if not is_sid(call, "CA"):
        call = None
    parent = storage.parent_of(root, call) if call else None  # asked by a child leg: its parent recorded
    found = [conference, parent, call]
    for sid in (parent, call):
        if sid:
            found.extend(storage.children_of(root, sid))
    return list(dict.fromkeys(sid for sid in found if sid))
