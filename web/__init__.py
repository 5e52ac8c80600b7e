"""Thin Flask layer: Twilio webhooks, the playback miss path, the API, health."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import Flask, current_app

from worker.celery_app import create_celery
from worker.config import Settings, load_settings

# Twilio's callbacks are a few hundred bytes; anything large is not Twilio.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Services:
    """What the views use: settings, a Redis client and a Celery producer."""

    settings: Settings
    redis: redis.Redis
    celery: Celery


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app; tests pass their own settings."""
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["recording_cache"] = Services(
        settings=settings,
        redis=redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30
        ),
        celery=create_celery(settings),
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


def services() -> Services:
    """The current app's Services."""
    return current_app.extensions["recording_cache"]
