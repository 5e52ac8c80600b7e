"""A Redis that keeps nothing across its restart: said at start and by /healthz, as a warning."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from stack import run
from web import create_app, health
from worker import broker

pytestmark = pytest.mark.real


@pytest.fixture
def durability(real_redis):
    """Set the throwaway server's persistence for a test, and put it back afterwards."""
    before = real_redis.config_get("appendonly") | real_redis.config_get("save")

    def set_to(appendonly: str, save: str) -> None:
        real_redis.config_set("appendonly", appendonly)
        real_redis.config_set("save", save)

    yield set_to
    set_to(before["appendonly"], before["save"])


@pytest.mark.parametrize(
    ("appendonly", "save", "warned"), [("no", "", True), ("yes", "", False), ("no", "3600 1", False)]
)
def test_only_a_redis_without_aof_or_snapshots_is_warned_about(real_redis, durability, appendonly, save, warned):
    durability(appendonly, save)
    assert (broker.persistence_warning(real_redis) == broker.NOT_DURABLE) is warned


def test_healthz_shows_the_warning_and_stays_200(settings, real_redis, durability, monkeypatch):
    durability("no", "")
    monkeypatch.setattr(health, "_persistence", {"at": float("-inf"), "warning": None})
    client = create_app(settings, redis=real_redis).test_client()
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json["status"] == "ok"
    assert answer.json["warnings"] == [broker.NOT_DURABLE]


def test_make_run_says_so_when_it_reuses_such_a_redis(settings, real_redis, durability, caplog):
    durability("no", "")
    url = real_redis.connection_pool.connection_kwargs
    reused = dataclasses.replace(settings, redis_url=f"redis://{url['host']}:{url['port']}/0")
    assert run.warn_if_not_durable(reused) == broker.NOT_DURABLE
    assert "run.redis_not_durable" in caplog.text


def test_a_redis_that_refuses_config_gets_no_claim():
    class Refusing:
        def config_get(self, name):
            raise redis.ResponseError("unknown command 'CONFIG'")

    assert broker.persistence_warning(Refusing()) is None
