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

``broker_floor_app``
    ``bare_app`` plus the one thing a webhook that answers only once its task
    is queued cannot skip: a Redis round trip (an LPUSH of a task-sized
    message, through redis-py's client holding one connection, as the
    service's publisher does). The gap between it
    and ``bare_app`` is the broker's share; the gap to the real webhook is
    what the service's own Python adds.
"""

from __future__ import annotations

from functools import cache

import redis
from flask import Flask, Response, abort, request, send_file

from worker import signing, storage
from worker.config import Settings
from worker.runtime import settings_or_exit


@cache
def _settings() -> Settings:
    # On first use, not at import: the bench runner imports FLOOR_LIST from here.
    return settings_or_exit(exit_code=4)


@cache
def _floor_redis() -> redis.Redis:
    # One held connection, as the service's publisher (worker/queue.py): no pool checkout per command.
    return redis.Redis.from_url(
        _settings().redis_url, socket_connect_timeout=1, socket_timeout=2, single_connection_client=True
    )


seed_app = Flask("bench_seed")
bare_app = Flask("bench_bare")
broker_floor_app = Flask("bench_broker_floor")

FLOOR_LIST = "bench:broker-floor"
_FLOOR_MESSAGE = "x" * 1200  # about the size of a fetch task's message


@seed_app.get("/recordings/<sid>.<fmt>")
def seed_playback(sid: str, fmt: str) -> Response:
    """Verify the playback signature, then send the file from Python."""
    path = f"/recordings/{sid}.{fmt}"
    if not signing.verify(path, request.args.get("expires"), request.args.get("sig"), _settings().playback_signing_key):
        abort(403)
    try:
        media = storage.media_path(_settings().recordings_dir, sid, fmt)
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


@broker_floor_app.post("/twilio/recording-status")
def broker_floor_webhook() -> tuple[str, int]:
    """Push a task-sized message to Redis, then answer 204."""
    push_floor_message()
    return "", 204


def push_floor_message() -> None:
    """The broker floor's one Redis round trip (``whatif_app``'s validate-push reuses it)."""
    _floor_redis().lpush(FLOOR_LIST, _FLOOR_MESSAGE)
