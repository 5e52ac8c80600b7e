"""Map domain errors and infrastructure faults to clear JSON answers."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

from worker.errors import InvalidSid, StorageError

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(InvalidSid)
    def invalid_sid(exc: InvalidSid):
        return jsonify(error=str(exc)), 400

    @app.errorhandler(redis.RedisError)
    @app.errorhandler(OperationalError)
    def broker_down(exc: Exception):
        # 503 makes Twilio retry the callback; nothing was accepted.
        log.error("redis.unavailable", extra={"error_type": type(exc).__name__})
        response = jsonify(error="the queue is unavailable, retry later")
        response.headers["Retry-After"] = "5"
        return response, 503

    @app.errorhandler(StorageError)
    def store_down(exc: StorageError):
        # The bucket (bucket mode) did not answer: the API cannot say what it holds right now.
        log.error("store.unavailable", extra={"reason": str(exc)})
        response = jsonify(error=f"the object store is unavailable, retry later: {exc}")
        response.headers["Retry-After"] = "5"
        return response, 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = jsonify(error=exc.description or exc.name)
        # Keep what the status needs besides the body: Allow on a 405, WWW-Authenticate on a 401.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, exc.code
