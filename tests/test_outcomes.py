"""Each way a fetch can end, and what its Celery task does about it (no worker needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis as redis_lib

from worker import keys, outcomes, resources, status, tasks
from worker.errors import (
    IncompleteMedia,
    LockBusy,
    RecordingNotFound,
    RecordingUnavailable,
    StorageError,
    UpstreamError,
    UpstreamNotReady,
    UpstreamRateLimited,
)

RE = "RE" + "1" * 32


def settle(exc: Exception, retries: int, settings, redis, waits: int = 0) -> outcomes.Outcome:
    return outcomes.settle(exc, retries, RE, "mp3", settings, redis, waits)


def test_a_busy_lock_retries_once_the_holders_ttl_is_over_without_a_limit(settings, redis):
    outcome = settle(LockBusy("held", ttl_left=3.0), 20, settings, redis)
    assert isinstance(outcome, outcomes.Retry)
    assert 3.2 <= outcome.countdown <= 4.0 and outcome.max_retries is None
    assert status.get_state(redis, RE, "mp3") is None


def test_a_recording_twilio_does_not_know_finishes_and_is_remembered(settings, redis):
    redis.set(keys.queued(RE, "mp3"), "1")
    outcome = settle(RecordingNotFound("no such recording"), 0, settings, redis)
    assert outcome == outcomes.Finish({"sid": RE, "result": "not_found"})
    assert status.get_state(redis, RE, "mp3")["status"] == "not_found"
    assert not status.is_queued(redis, RE, "mp3")  # a later play may ask again


@pytest.mark.parametrize(("twilio_status", "code"), [("absent", 16101), ("absent", 16102), ("failed", None)])
def test_an_absent_or_failed_recording_is_final_with_its_error_code(settings, redis, twilio_status, code):
    redis.set(keys.queued(RE, "mp3"), "1")
    outcome = settle(RecordingUnavailable(RE, twilio_status, code), 3, settings, redis)
    assert outcome == outcomes.Finish({"sid": RE, "result": twilio_status, "error_code": code})
    assert status.final_state(redis, RE, "mp3") == {**status.get_state(redis, RE, "mp3"), "status": twilio_status}
    assert status.final_state(redis, RE, "mp3")["error_code"] == code
    assert not status.is_queued(redis, RE, "mp3")


def test_a_recording_still_processing_waits_without_a_limit_or_the_budget(settings, redis):
    outcome = settle(UpstreamNotReady("processing"), settings.download_max_retries + 5, settings, redis, waits=40)
    assert isinstance(outcome, outcomes.Retry) and outcome.waited and outcome.max_retries is None
    assert outcome.countdown <= settings.retry_backoff_max_seconds
    assert status.get_state(redis, RE, "mp3") is None


@pytest.mark.parametrize(("retry_after", "low", "high"), [(7.0, 7.0, 8.0), (None, 0.0, 300.0)])
def test_twilios_429_waits_its_retry_after_without_using_up_the_budget(settings, redis, retry_after, low, high):
    exc = UpstreamRateLimited("media GET answered 429", retry_after)
    outcome = settle(exc, settings.download_max_retries + 3, settings, redis, waits=4)
    assert isinstance(outcome, outcomes.Retry) and outcome.waited and outcome.max_retries is None
    assert low <= outcome.countdown <= high


def test_waits_for_processing_do_not_use_up_the_fault_budget(settings, redis):
    waits = 7
    retried = settle(UpstreamError("503"), waits + settings.download_max_retries - 1, settings, redis, waits)
    assert isinstance(retried, outcomes.Retry) and not retried.waited
    assert retried.max_retries == settings.download_max_retries + waits  # what Celery counts against
    failed = settle(UpstreamError("503"), waits + settings.download_max_retries, settings, redis, waits)
    assert failed == outcomes.Fail()


def test_a_recording_processing_for_hours_becomes_a_fault(settings, redis):
    outcome = settle(UpstreamNotReady("processing"), outcomes.MAX_PROCESSING_WAITS, settings, redis,
                     waits=outcomes.MAX_PROCESSING_WAITS)  # fmt: skip
    assert isinstance(outcome, outcomes.Retry) and not outcome.waited


@pytest.mark.parametrize(
    "exc", [UpstreamError("503"), IncompleteMedia("short"), StorageError("disk full"), redis_lib.ConnectionError()]
)
def test_a_transient_fault_retries_with_backoff_within_the_budget(settings, redis, exc):
    outcome = settle(exc, 2, settings, redis)
    ceiling = settings.retry_backoff_seconds * 2**2
    assert isinstance(outcome, outcomes.Retry)
    assert ceiling / 2 <= outcome.countdown <= ceiling
    assert outcome.max_retries == settings.download_max_retries
    assert status.get_state(redis, RE, "mp3") is None


def test_the_last_transient_fault_fails_and_shows_failed(settings, redis):
    redis.set(keys.queued(RE, "mp3"), "1")
    outcome = settle(UpstreamError("media GET answered 500"), settings.download_max_retries, settings, redis)
    assert outcome == outcomes.Fail()
    state = status.get_state(redis, RE, "mp3")
    assert (state["status"], state["attempts"]) == ("failed", settings.download_max_retries + 1)
    assert "500" in state["error"]
    assert not status.is_queued(redis, RE, "mp3")


@pytest.mark.parametrize(("retries", "low", "high"), [(0, 1.0, 2.0), (3, 8.0, 16.0), (12, 150.0, 300.0)])
def test_backoff_doubles_keeps_half_as_a_floor_and_is_capped(settings, retries, low, high):
    assert outcomes.backoff(retries, settings, uniform=lambda a, b: a) == low
    assert outcomes.backoff(retries, settings, uniform=lambda a, b: b) == high


class Retried(Exception):
    """What the stub's ``retry`` returns for the task to raise, as Celery's does."""


@pytest.fixture
def task(settings, redis, monkeypatch):
    """A stand-in for a bound Celery task, and this process's resources on the test's Redis."""
    monkeypatch.setattr(resources, "_current", SimpleNamespace(settings=settings, redis=redis))

    def retry(exc, countdown, max_retries, kwargs):
        return Retried(exc, countdown, max_retries, kwargs)

    return SimpleNamespace(request=SimpleNamespace(retries=0, kwargs={}), retry=retry)


def _raises(exc: Exception):
    def work() -> dict:
        raise exc

    return work


def test_the_task_returns_what_the_work_returns(task):
    assert tasks._settled(task, RE, "mp3", lambda: {"sid": RE, "result": "cached"}) == {"sid": RE, "result": "cached"}


def test_the_task_turns_a_retry_into_celerys_retry(task, settings):
    with pytest.raises(Retried) as raised:
        tasks._settled(task, RE, "mp3", _raises(UpstreamError("reset")))
    exc, countdown, max_retries, kwargs = raised.value.args
    assert isinstance(exc, UpstreamError) and countdown > 0 and max_retries == settings.download_max_retries
    assert kwargs == {"waits": 0}


def test_the_task_counts_its_waits_for_processing_in_its_keywords(task):
    task.request.retries, task.request.kwargs = 4, {"waits": 4}
    with pytest.raises(Retried) as raised:
        tasks._settled(task, RE, "mp3", _raises(UpstreamNotReady("processing")))
    assert raised.value.args[2:] == (None, {"waits": 5})


def test_the_task_returns_a_finish(task):
    assert tasks._settled(task, RE, "mp3", _raises(RecordingNotFound("gone")))["result"] == "not_found"


def test_the_task_fails_with_the_error_when_the_budget_is_spent(task, settings):
    task.request.retries = settings.download_max_retries
    with pytest.raises(UpstreamError, match="reset"):
        tasks._settled(task, RE, "mp3", _raises(UpstreamError("reset")))


def test_the_task_lets_a_bug_through_untouched(task):
    with pytest.raises(KeyError):
        tasks._settled(task, RE, "mp3", _raises(KeyError("bug")))
