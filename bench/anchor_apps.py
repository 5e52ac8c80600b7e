"""Bench-only WSGI apps the real service is measured against.

Both run under gunicorn with the project's ``web/gunicorn.conf.py`` (same
worker class and count, same logging set-up), behind the same nginx:

``seed_app``
    The "seed" pattern the project replaces: playback proxied through Python.
    It checks the same playback signature as nginx's ``secure_link`` (with
    ``worker.signing.verify``) and answers with Flask's ``send_file`` (Range
    and conditional requests through werkzeug). It is kinder than the real
    seed, which re-downloaded the recording from Twilio on every play.

``bare_app``
    The floor of a Flask webhook: ``POST /twilio/recording-status`` answers
    204 without reading the form, validating, or touching Redis.
"""

from __future__ import annotations

from flask import Flask, Response, abort, request, send_file

from worker import signing, storage
from worker.runtime import settings_or_exit

_settings = settings_or_exit(exit_code=4)

seed_app = Flask("bench_seed")
bare_app = Flask("bench_bare")


@seed_app.get("/recordings/<sid>.<fmt>")
def seed_playback(sid: str, fmt: str) -> Response:
    """Verify the playback signature, then send the file from Python."""
    path = f"/recordings/{sid}.{fmt}"
    if not signing.verify(path, request.args.get("expires"), request.args.get("sig"), _settings.playback_signing_key):
        abort(403)
    try:
        media = storage.media_path(_settings.recordings_dir, sid, fmt)
    except ValueError:
        abort(404)
    if not media.is_file():
        abort(404)
    response = send_file(media, mimetype="audio/mpeg", conditional=True, max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bare_app.post("/twilio/recording-status")
def bare_webhook() -> tuple[str, int]:
    """Answer 204 and do nothing else."""
    return "", 204
