"""Container healthchecks: ``python -m stack.healthcheck web|worker|beat|flower``; exit 0 healthy, 1 not.

The reason for an unhealthy answer goes to stdout, where ``docker inspect``
shows it.

web     GET /healthz from gunicorn answers 200 (it accepts the web container's
        read-only mount of RECORDINGS_DIR when the folder is readable).
worker  RECORDINGS_DIR writable, and this container's worker (WORKER_NAME@HOSTNAME)
        answers a Celery ping through the broker.
beat    the broker (Redis) answers.
flower  Flower's /healthcheck answers OK.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT = 5.0


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def web_problem(status: int, payload: object) -> str | None:
    """Why /healthz's answer means the web container is unhealthy, or None."""
    if status == 200:
        return None
    if not isinstance(payload, dict):
        return f"/healthz answered {status} without a JSON object"
    failing = {k: v for k, v in payload.items() if k != "status" and v != "ok"}
    return "; ".join(f"{k}: {v}" for k, v in sorted(failing.items())) or f"/healthz answered {status}"


def check_web(settings) -> str | None:
    try:
        status, body = _get(f"http://127.0.0.1:{settings.web_port}/healthz")
    except OSError as exc:
        return f"web does not answer: {exc}"
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    return web_problem(status, payload)


def check_worker(settings) -> str | None:
    root = settings.recordings_dir
    if not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
        return f"{root} is not a writable folder"
    from worker.celery_worker import app

    name = f"{os.environ.get('WORKER_NAME') or 'worker'}@{socket.gethostname()}"  # the Procfile's -n
    try:
        replies = app.control.ping(destination=[name], timeout=TIMEOUT)
    except Exception as exc:  # broker down or unreachable
        return f"ping failed: {type(exc).__name__}: {exc}"
    if not any(name in reply for reply in replies):
        return f"{name} did not answer a ping"
    return None


def check_beat(settings) -> str | None:
    import redis

    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT).ping()
    except redis.RedisError as exc:
        return f"broker does not answer: {exc}"
    return None


def check_flower(settings) -> str | None:
    try:
        status, body = _get(f"http://127.0.0.1:{settings.flower_port}/healthcheck")
    except OSError as exc:
        return f"flower does not answer: {exc}"
    if status != 200 or body.strip() != b"OK":
        return f"flower /healthcheck answered {status}"
    return None


CHECKS = {"web": check_web, "worker": check_worker, "beat": check_beat, "flower": check_flower}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        sys.stderr.write(f"usage: python -m stack.healthcheck {'|'.join(CHECKS)}\n")
        return 2
    from worker.config import load_settings
    from worker.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as exc:
        problem: str | None = f"configuration error: {exc}"
    else:
        problem = CHECKS[argv[0]](settings)
    if problem:
        sys.stdout.write(f"unhealthy: {problem}\n")
        return 1
    sys.stdout.write("healthy\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
