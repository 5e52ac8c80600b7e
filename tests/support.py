"""Helpers the tests share: settings through the real loader, a throwaway
redis-server, and the tasks an app enqueued. Fixtures are in conftest.py."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from pathlib import Path

from stack.ports import port_open, wait_for
from worker.config import Settings, load_settings

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "f" * 32
API_TOKEN = "test-api-token"
SIGNING_KEY = "test-signing-key-0123456789"


def make_settings(tmp_path: Path, **overrides: str) -> Settings:
    """Settings for a test, built through the real loader from a fake environment."""
    env = {
        "ENV_FILE": str(tmp_path / "no.env"),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": "http://twilio.test",
        "PUBLIC_BASE_URL": "http://cache.test",
        "RECORDINGS_DIR": str(tmp_path / "recordings"),
        "API_TOKEN": API_TOKEN,
        "PLAYBACK_SIGNING_KEY": SIGNING_KEY,
        "FLOWER_BASIC_AUTH": "admin:secret",
        "LOCK_TTL_SECONDS": "5",
    }
    env.update(overrides)
    settings = load_settings(env)
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    return settings


def spawn_redis_server(binary: str, port: int, folder: Path) -> subprocess.Popen:
    """A redis-server without persistence on ``port``, returned once it accepts connections."""
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), 10, "redis-server")
    except BaseException:
        proc.terminate()
        proc.wait(10)
        raise
    return proc


def sent_tasks(flask_app) -> list[tuple[str, list]]:
    """Tasks the app enqueued, oldest first, read back from the broker's queue list."""
    services = flask_app.extensions["recording_cache"]
    pushed = []
    for raw in reversed(services.redis.lrange(services.celery.conf.task_default_queue, 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        pushed.append((message["headers"]["task"], args))
    return pushed


def relay(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either side ends, then shut both down (one direction of a forwarder)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
