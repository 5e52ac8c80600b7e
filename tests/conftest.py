"""Fixtures: settings on a temp volume, the Flask app, Redis (fake and real), stacks."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import fakeredis
import pytest
import redis as redis_lib

from tests.stack import Stack, free_port, port_open, wait_for
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture(params=[pytest.param("fake", marks=pytest.mark.fake), pytest.param("real", marks=pytest.mark.real)])
def redis(request):
    """A flushed Redis: fakeredis (with Lua), or a real redis-server."""
    if request.param == "fake":
        client = fakeredis.FakeRedis()
        yield client
        client.flushdb()
    else:
        yield request.getfixturevalue("real_redis")


@pytest.fixture
def real_redis(real_redis_server):
    """A flushed client of the throwaway redis-server; skipped when none is installed."""
    if real_redis_server is None:
        pytest.skip("redis-server is not installed")
    client = redis_lib.Redis.from_url(real_redis_server)
    client.flushdb()
    yield client
    client.flushdb()


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


@pytest.fixture(scope="session")
def real_redis_server(tmp_path_factory):
    """A throwaway redis-server on a free port for unit tests against the real thing."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = spawn_redis_server(binary, port, tmp_path_factory.mktemp("redis-unit"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def app(settings, monkeypatch):
    """The Flask app on fakeredis (with Lua), the broker's queue list inspected directly."""
    from web import create_app

    flask_app = create_app(settings)
    services = flask_app.extensions["recording_cache"]
    object.__setattr__(services, "redis", fakeredis.FakeRedis())
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(services.celery, "send_task", lambda name, args=None, **kw: sent.append((name, args)))
    flask_app.config.update(TESTING=True, SENT_BY_CELERY=sent)
    return flask_app


def sent_tasks(flask_app) -> list[tuple[str, list]]:
    """Tasks the app enqueued: those pushed to the queue list, then those sent through Celery."""
    services = flask_app.extensions["recording_cache"]
    pushed = []
    for raw in reversed(services.redis.lrange(services.celery.conf.task_default_queue, 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        pushed.append((message["headers"]["task"], args))
    return pushed + flask_app.config["SENT_BY_CELERY"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The whole deployment, shared by the end-to-end tests: 2 workers × 2 processes."""
    running = Stack(tmp_path_factory.mktemp("stack"))
    try:
        running.start_all(workers=2, concurrency=2)
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def own_stack(tmp_path):
    """A stack a test may break (kill, restart); started by the test itself."""
    running = Stack(tmp_path / "stack")
    try:
        yield running
    finally:
        running.stop_all()
