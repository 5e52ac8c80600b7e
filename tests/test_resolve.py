"""Twilio list answers the worker trusts least: resolving a CallSid, reconcile and backfill."""

from __future__ import annotations

import pytest
import responses

from worker import resolve, twilio_api
from worker.errors import RecordingNotFound, UpstreamError

CA = "CA" + "3" * 32
PARENT = "CA" + "4" * 32
RE_OLD, RE_NEW = "RE" + "1" * 32, "RE" + "2" * 32


@pytest.fixture
def twilio(settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def recordings_url(settings) -> str:
    return f"{twilio_api.account_url(settings)}/Recordings.json"


def page(*records: dict) -> dict:
    return {"recordings": list(records), "next_page_uri": None, "page": 0, "page_size": 50}


def recording(sid: str, start_time, status: str = "completed") -> dict:
    return {"sid": sid, "call_sid": CA, "status": status, "start_time": start_time, "date_created": None}


def test_the_latest_completed_recording_wins(settings, twilio):
    twilio.get(
        recordings_url(settings),
        json=page(
            recording(RE_OLD, "Tue, 01 Sep 2026 10:00:00 +0000"), recording(RE_NEW, "Tue, 01 Sep 2026 11:00:00 +0000")
        ),
    )
    found = resolve.resolve_call(CA, settings, twilio_api.make_client(settings))
    assert (found.recording_sid, found.owner_call_sid) == (RE_NEW, CA)


def test_a_recording_without_a_date_does_not_break_the_choice(settings, twilio):
    twilio.get(
        recordings_url(settings),
        json=page(recording(RE_OLD, None), recording(RE_NEW, "Tue, 01 Sep 2026 11:00:00 +0000")),
    )
    found = resolve.resolve_call(CA, settings, twilio_api.make_client(settings))
    assert found.recording_sid == RE_NEW


@pytest.mark.parametrize(
    "answer",
    [
        {"body": "{not json"},
        {"json": [1, 2]},
        {"json": {"recordings": None}},
        {"json": {"recordings": [1, "x"]}},
        {"json": page(recording(RE_OLD, "Tue, 31 Feb 2026 10:00:00 +0000"))},  # the twilio package raises
    ],
)
def test_a_garbled_recordings_list_is_an_upstream_error(settings, twilio, answer):
    twilio.get(recordings_url(settings), **answer)
    with pytest.raises(UpstreamError):
        resolve.resolve_call(CA, settings, twilio_api.make_client(settings))


def test_a_malformed_parent_call_sid_is_an_upstream_error(settings, twilio):
    twilio.get(recordings_url(settings), json=page())
    twilio.get(f"{twilio_api.account_url(settings)}/Calls/{CA}.json", json={"sid": CA, "parent_call_sid": "../x"})
    with pytest.raises(UpstreamError, match="parent_call_sid"):
        resolve.resolve_call(CA, settings, twilio_api.make_client(settings))


def test_a_call_without_parent_or_recording_is_not_found(settings, twilio):
    twilio.get(recordings_url(settings), json=page())
    twilio.get(f"{twilio_api.account_url(settings)}/Calls/{CA}.json", json={"sid": CA, "parent_call_sid": None})
    with pytest.raises(RecordingNotFound):
        resolve.resolve_call(CA, settings, twilio_api.make_client(settings))


def test_reconcile_and_backfill_skip_a_listed_recording_with_a_malformed_sid(settings, twilio, redis):
    from datetime import UTC, datetime

    from worker import keys
    from worker.celery_app import create_celery
    from worker.maintenance import backfill, reconcile
    from worker.publish import FastPublisher

    good = recording(RE_NEW, "Tue, 01 Sep 2026 11:00:00 +0000")
    twilio.get(recordings_url(settings), json=page(recording("../../etc", None), good))
    client, publisher = twilio_api.make_client(settings), FastPublisher(create_celery(settings), redis)
    report = reconcile.reconcile(settings, redis, client, publisher)
    assert (report.listed, report.enqueued) == (2, 1)
    redis.delete(keys.QUEUE, keys.queued(RE_NEW, settings.recording_format))
    filled = backfill.backfill(settings, client, publisher, since=datetime(2026, 1, 1, tzinfo=UTC))
    assert (filled.found, filled.skipped, filled.enqueued) == (2, 1, 1)
    assert redis.llen(keys.QUEUE) == 1


def test_reconcile_and_backfill_keep_their_window_exact_over_twilios_whole_days(settings, twilio, redis):
    from datetime import UTC, datetime, timedelta

    from worker.celery_app import create_celery
    from worker.maintenance import backfill, reconcile
    from worker.publish import FastPublisher

    def dated(sid: str, when: datetime) -> dict:
        return {**recording(sid, None), "date_created": when.strftime("%a, %d %b %Y %H:%M:%S +0000")}

    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(hours=settings.reconcile_lookback_hours)
    early = since - timedelta(minutes=5)  # the same GMT day, or the one before: Twilio lists it all the same
    inside, outside = "RE" + "7" * 32, "RE" + "8" * 32
    twilio.get(recordings_url(settings), json=page(dated(inside, now - timedelta(hours=1)), dated(outside, early)))
    client, publisher = twilio_api.make_client(settings), FastPublisher(create_celery(settings), redis)
    assert (report := reconcile.reconcile(settings, redis, client, publisher)).listed == 1 and report.enqueued == 1
    filled = backfill.backfill(settings, client, publisher, since=since, until=now, dry_run=True)
    assert filled.found == 1


def test_reconcile_enqueues_each_page_before_it_asks_for_the_next(settings, twilio, redis):
    """One page of Twilio's list in memory at a time, however long the list (a 10M-recording account's)."""
    import json
    from datetime import UTC, datetime, timedelta

    from worker import keys
    from worker.celery_app import create_celery
    from worker.maintenance import reconcile
    from worker.publish import FastPublisher

    when = (datetime.now(UTC) - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    pages = [[f"RE{n:032x}" for n in range(p * 3, p * 3 + 3)] for p in range(3)]
    queued_when_asked = []

    def serve(request):
        from urllib.parse import parse_qs, urlsplit

        number = int(parse_qs(urlsplit(request.url).query).get("Page", ["0"])[0])
        queued_when_asked.append(redis.llen(keys.QUEUE))
        following = None
        if number + 1 < len(pages):
            path = urlsplit(recordings_url(settings)).path
            following = f"{path}?Page={number + 1}&PageSize=1000&PageToken=PA{number}"
        body = {
            "recordings": [{**recording(sid, when), "date_created": when} for sid in pages[number]],
            "next_page_uri": following,
            "page": number,
            "page_size": 1000,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    twilio.add_callback(responses.GET, recordings_url(settings), callback=serve)
    client, publisher = twilio_api.make_client(settings), FastPublisher(create_celery(settings), redis)
    report = reconcile.reconcile(settings, redis, client, publisher)
    assert (report.listed, report.enqueued) == (9, 9)
    assert queued_when_asked == [0, 3, 6]  # page n+1 was asked for only after page n was enqueued
