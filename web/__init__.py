"""Thin Flask layer: Twilio webhooks, the playback miss path, the API, health."""

from __future__ import annotations

from dataclasses import dataclass

import redis as redis_lib
from celery import Celery
from flask import Flask, current_app

from worker.celery_app import create_celery
from worker.config import Settings, load_settings
from worker.publish import FastPublisher
from worker.tiers import Tier, for_settings

# Twilio's callbacks are a few hundred bytes; anything large is not Twilio.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Services:
    """What the views use: settings, a Redis client and the task publisher."""

    settings: Settings
    redis: redis_lib.Redis
    celery: Celery
    publisher: FastPublisher
    tier: Tier  # where recordings are kept: the volume, or STORAGE_URL's bucket


def create_app(
    settings: Settings | None = None, *, redis: redis_lib.Redis | None = None, celery: Celery | None = None
) -> Flask:
    """Build the web app; tests pass their own settings and clients.

    gunicorn calls this in each worker process after the fork (no
    ``preload_app``), so every process has clients of its own.
    """
    settings = settings or load_settings()
    if redis is None:
        redis = _redis_client(settings)
    celery = celery or create_celery(settings)
    app = Flask(__name__, static_folder=None)  # the demo blueprint serves its own static files
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["recording_cache"] = Services(
        settings, redis, celery, FastPublisher(celery, redis), for_settings(settings)
    )

    from . import api, errors, health, playback, twilio_hooks

    errors.register(app)
    app.register_blueprint(twilio_hooks.bp)
    app.register_blueprint(playback.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    if settings.demo:
        from . import demo

        app.register_blueprint(demo.bp)
    return app


def _redis_client(settings: Settings) -> redis_lib.Redis:
    # Short timeouts: a webhook answers 503 at once when Redis is away, and Twilio retries.
    return redis_lib.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30
    )


def services() -> Services:
    """The current app's Services."""
    return current_app.extensions["recording_cache"]
