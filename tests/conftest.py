"""Fixtures: settings on a temp volume, the Flask app, Redis (fake and real), stacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import fakeredis
import pytest
import redis as redis_lib

from stack.local import Stack
from stack.ports import free_port
from tests.support import make_settings, spawn_redis_server
from worker.config import Settings


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
def app(settings):
    """The Flask app on fakeredis (with Lua); tasks land on the queue list (tests.support.sent_tasks)."""
    from web import create_app

    flask_app = create_app(settings, redis=fakeredis.FakeRedis())
    flask_app.config.update(TESTING=True)
    return flask_app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The whole deployment, shared by the end-to-end tests: 2 workers × 2 processes."""
    with Stack(tmp_path_factory.mktemp("stack")) as running:
        yield running.start_all(workers=2, concurrency=2)


@pytest.fixture
def own_stack(tmp_path):
    """A stack a test may break (kill, restart); started by the test itself."""
    with Stack(tmp_path / "stack") as running:
        yield running


@pytest.fixture(scope="session")
def njs():
    """nginx's njs module (bucket mode signs its reads of the bucket with it); skipped when absent."""
    from nginx.render import NJS_MODULE

    if not NJS_MODULE.is_file():
        pytest.skip("nginx's njs module is not installed (apt-get install libnginx-mod-http-js); .ci/run installs it")
    return NJS_MODULE


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    """A Ceph RADOS Gateway on loopback (stack.rgw): endpoint and S3 keys; skipped when Ceph is not installed."""
    from stack import rgw as ceph

    if shutil.which("radosgw") is None:
        pytest.skip(f"Ceph is not installed (apt-get install {ceph.PACKAGES}); .ci/run installs it")
    folder = tmp_path_factory.mktemp("rgw")
    try:
        yield ceph.start(folder)
    finally:
        ceph.stop(folder)
