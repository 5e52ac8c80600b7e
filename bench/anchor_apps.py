"""Bench-only WSGI apps the real service is measured against.

Each runs under gunicorn with the project's ``web/gunicorn.conf.py`` (same
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

``validate_push_app()``
    The real app (``web.create_app``) with its recording-status view replaced
    by the service's own check (``_require_twilio``: form parsing, twilio's
    ``RequestValidator``, AccountSid) plus the broker floor's LPUSH: no SID
    checks, no dedup claim, no task message, no log line, no metric. The
    least a webhook that validates and answers once its task is in Redis can do.

``naive_app()``
    The issue's "naive anchor": the same check, then ``Celery.send_task`` of
    the fetch (kombu's publish path), as a first version would write it.

The last two are factories: gunicorn loads them as ``'bench.anchor_apps:naive_app()'``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import redis
from flask import Flask, Response, abort, request, send_file

from web import create_app, services
from web.twilio_hooks import _require_twilio
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
    """The broker floor's one Redis round trip (``validate_push_app`` makes it too)."""
    _floor_redis().lpush(FLOOR_LIST, _FLOOR_MESSAGE)


def validate_push() -> tuple[str, int]:
    """Check the webhook as the service does, push the floor's message, answer 204."""
    _require_twilio("recording")
    push_floor_message()
    return "", 204


def naive_send_task() -> tuple[str, int]:
    """Check the webhook as the service does, ``send_task`` the fetch, answer 204."""
    _require_twilio("recording")
    form = request.form
    args = [form.get("RecordingSid"), services().settings.recording_format, form.get("CallSid"), None]
    services().celery.send_task("recordings.fetch", args=args)
    return "", 204


def validate_push_app() -> Flask:
    """The real app with its recording-status view replaced by ``validate_push``."""
    return _with_recording_status(validate_push)


def naive_app() -> Flask:
    """The real app with its recording-status view replaced by ``naive_send_task``."""
    return _with_recording_status(naive_send_task)


def _with_recording_status(view: Callable[[], tuple[str, int]]) -> Flask:
    app = create_app(_settings())
    app.view_functions["twilio.recording_status"] = view
    return app
