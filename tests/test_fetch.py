"""fetch_recording against a mocked Twilio (responses) and fake or real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import urlsplit

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from worker import fetch, sidecar, status, storage, twilio_api
from worker.errors import (
    IncompleteMedia,
    LockBusy,
    RecordingNotFound,
    StorageError,
    UpstreamError,
    UpstreamNotReady,
)
from worker.locks import RecordingLock

RE = "RE" + "3" * 32
CA = "CA" + "3" * 32
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 4086


@pytest.fixture
def twilio(settings):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def session(settings):
    return twilio_api.new_session(settings)


def media(settings, fmt="mp3"):
    return twilio_api.media_url(settings, RE, fmt)


def resource(settings):
    return f"{twilio_api.account_url(settings)}/Recordings/{RE}.json"


def media_gets(twilio, settings):
    return sum(1 for call in twilio.calls if call.request.url == media(settings))


def test_downloads_once_then_serves_from_the_volume(settings, redis, twilio, session):
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    first = fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    second = fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    assert (first.result, second.result) == ("downloaded", "cached")
    assert media_gets(twilio, settings) == 1
    assert storage.media_path(settings.recordings_dir, RE, "mp3").read_bytes() == MP3
    facts = sidecar.read(settings.recordings_dir, RE, "mp3")
    assert facts.call_sid == CA and facts.bytes == len(MP3) and facts.format == "mp3"
    assert storage.resolve_link(settings.recordings_dir, CA, "mp3") == RE


def test_sends_basic_auth_only_to_the_configured_origin(settings, redis, twilio, session):
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    request = twilio.calls[0].request
    assert request.url.startswith("http://twilio.test/2010-04-01/Accounts/AC")
    assert request.headers["Authorization"].startswith("Basic ")


def test_unknown_call_sid_is_read_from_the_recording_resource(settings, redis, twilio, session):
    twilio.get(
        resource(settings),
        json={
            "sid": RE,
            "call_sid": CA,
            "status": "completed",
            "duration": "7",
            "start_time": "Tue, 01 Sep 2026 10:00:00 +0000",
        },
    )
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    fetch.fetch_recording(RE, "mp3", settings, redis, session)
    facts = sidecar.read(settings.recordings_dir, RE, "mp3")
    assert facts.call_sid == CA and facts.duration == "7"
    assert facts.recorded_at == "2026-09-01T10:00:00+00:00"


def test_another_holder_of_the_lock_means_no_download(settings, redis, twilio, session):
    holder = RecordingLock(redis, RE, "mp3", ttl=5)
    assert holder.acquire()
    with pytest.raises(LockBusy):
        fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    assert len(twilio.calls) == 0


def test_media_not_ready_is_retryable(settings, redis, twilio, session):
    twilio.get(media(settings), status=404, json={"code": 20404})
    twilio.get(resource(settings), json={"sid": RE, "call_sid": CA, "status": "processing"})
    with pytest.raises(UpstreamNotReady):
        fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    assert not status.is_downloading(redis, RE, "mp3")  # the lock was released


@pytest.mark.parametrize("resource_answer", [{"status": 404}, {"json": {"sid": RE, "status": "absent"}}])
def test_recording_twilio_does_not_have_is_final(settings, redis, twilio, session, resource_answer):
    twilio.get(media(settings), status=404, json={"code": 20404})
    twilio.get(resource(settings), **resource_answer)
    with pytest.raises(RecordingNotFound):
        fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 500}, UpstreamError),
        ({"status": 503}, UpstreamError),
        ({"body": requests.ConnectionError("refused")}, UpstreamError),
        ({"body": requests.ReadTimeout("slow")}, UpstreamError),
        (
            {"body": MP3[:100], "headers": {"Content-Length": str(len(MP3))}, "auto_calculate_content_length": False},
            IncompleteMedia,
        ),
        ({"body": b"<html>" + b"x" * 200, "headers": {"Content-Length": "206"}}, IncompleteMedia),
        # Odd answers that once escaped as requests' or Python's own exceptions:
        ({"status": 307, "headers": {"Location": "file:///etc/passwd"}}, UpstreamError),
        ({"status": 307, "headers": {"Location": "http://[::1/x"}}, UpstreamError),
        ({"body": MP3, "headers": {"Content-Length": str(len(MP3)), "Content-Encoding": "gzip"}}, UpstreamError),
    ],
)
def test_upstream_faults_leave_nothing_on_the_volume(settings, redis, twilio, session, answer, error):
    twilio.get(media(settings), **answer)
    with pytest.raises(error):
        fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    assert not storage.is_cached(settings.recordings_dir, RE, "mp3")
    assert not any((settings.recordings_dir / ".tmp").glob("*"))
    assert not status.is_downloading(redis, RE, "mp3")


@pytest.mark.parametrize(
    ("twilio_time", "iso"),
    [
        ("Sat, 01 Jan 0050 12:00:00 +0000", "0050-01-01T12:00:00+00:00"),  # four digits: the year as written
        ("Tue, 01 Sep 2026 10:00:00 +0000", "2026-09-01T10:00:00+00:00"),
        ("Tue, 01 Sep 2026 12:00:00 +0200", "2026-09-01T10:00:00+00:00"),
        ("Tue, 01 Sep 2026 10:00:00 -0000", "2026-09-01T10:00:00+00:00"),  # RFC 2822: UTC, offset unknown
    ],
)
def test_twilio_times_become_sortable_utc(twilio_time, iso):
    assert twilio_api.iso_time(twilio_time) == iso


@given(
    st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_any_time_in_twilios_form_is_read_as_rfc_2822_means_it(moment, offset_minutes):
    """email.utils writes RFC 2822 (as Twilio does); iso_time reads back the same instant."""
    local = moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert twilio_api.iso_time(format_datetime(local)) == local.astimezone(UTC).isoformat()


@pytest.mark.parametrize(
    "junk",
    [
        "yesterday",
        "",
        "Tue, 31 Sep 2026 10:00:00 +0000",  # no such day
        "Tue, 01 Sep 2026 25:00:00 +0000",  # no such hour
        "Tue, 01 Sep 99999999999999999999 10:00:00 +0000",  # too large for a datetime
        "Tue, 01 Sep 2026 10:00:00 +99999999999999999999",
        "Tue, 01 Sep 2026 10:00:00 EST",
        "Tue, 01 Sep 2026 10:00:00 +0000\x00junk",
        "Tue, 01 Sen 2026 10:00:00 +0000",  # no such month
        "Sat, 29 Feb 2025 10:00:00 +0000",  # not a leap year
        "Tue, 01 Sep 2026 10:00:00 +2400",  # an offset of a whole day
        "Mon, 01 Jan 0001 00:00:00 +0100",  # before year 1 in UTC
        "Fri, 31 Dec 9999 23:00:00 -0100",  # after 9999 in UTC
        None,
        b"Tue, 01 Sep 2026 10:00:00 +0000",
        1788256800,
        "01 Sep 26 10:00:00 +0000",
    ],
)
def test_malformed_twilio_times_are_value_errors(junk):
    with pytest.raises(ValueError):
        twilio_api.iso_time(junk)


def test_only_urls_on_the_configured_origin_count_as_twilio(settings):
    origin = settings.twilio_api_base_url.rstrip("/")
    parts = urlsplit(origin)
    other_scheme = "http" if parts.scheme == "https" else "https"
    ours = [f"{origin}/2010-04-01/Accounts/AC1/Recordings/{RE}", f"{parts.scheme.upper()}://{parts.netloc}/x"]
    foreign = [
        f"{origin}.evil.example/2010-04-01/Recordings/{RE}",  # the origin as a prefix of another host
        f"{origin}@evil.example/{RE}",  # userinfo: the host is evil.example
        f"{parts.scheme}://{parts.hostname}:1/{RE}",  # another port
        f"{other_scheme}://{parts.netloc}/{RE}",  # another scheme
        f"{origin}\\@evil.example/{RE}",
        f"/{RE}",
        "",
        "https://[x/2010-04-01",  # urlsplit refuses it
    ]
    assert [twilio_api.is_twilio_url(settings, url) for url in ours] == [True] * len(ours)
    assert [twilio_api.is_twilio_url(settings, url) for url in foreign] == [False] * len(foreign)


@pytest.mark.parametrize(
    "answer",
    [
        {"body": "{not json"},
        {"json": [1, 2]},
        {"json": None},
        {"body": "[" * 100_000 + "]" * 100_000},
    ],
)
def test_a_recording_resource_twilio_garbled_is_an_upstream_error(settings, redis, twilio, session, answer):
    twilio.get(resource(settings), **answer)
    with pytest.raises(UpstreamError):
        fetch.fetch_recording(RE, "mp3", settings, redis, session)
    assert not status.is_downloading(redis, RE, "mp3")


@pytest.mark.parametrize("call_sid", ["../../etc", 12345, RE, None])
def test_a_malformed_call_sid_in_the_resource_is_ignored(settings, redis, twilio, session, call_sid):
    twilio.get(resource(settings), json={"sid": RE, "call_sid": call_sid, "status": "completed"})
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    assert fetch.fetch_recording(RE, "mp3", settings, redis, session).result == "downloaded"
    assert sidecar.read(settings.recordings_dir, RE, "mp3").call_sid is None
    assert not status.is_downloading(redis, RE, "mp3")


def test_a_volume_that_refuses_the_temp_file_is_a_storage_error(settings, redis, twilio, session):
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    (settings.recordings_dir / ".tmp").write_text("")  # a file where the temp folder goes
    with pytest.raises(StorageError):
        fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    assert not storage.is_cached(settings.recordings_dir, RE, "mp3")


def test_a_sidecar_lost_after_the_media_landed_is_written_on_the_next_fetch(settings, redis, twilio, session):
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA)
    expected = sidecar.read(settings.recordings_dir, RE, "mp3")
    sidecar.remove(settings.recordings_dir, RE, "mp3")  # as when the volume filled up between media and sidecar
    assert fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid=CA).result == "cached"
    healed = sidecar.read(settings.recordings_dir, RE, "mp3")
    assert (healed.sha256, healed.bytes, healed.call_sid) == (expected.sha256, len(MP3), CA)
    assert media_gets(twilio, settings) == 1


def test_a_rewritten_sidecar_keeps_what_twilio_knows(settings, redis, twilio, session):
    twilio.get(
        resource(settings),
        json={"sid": RE, "call_sid": CA, "status": "completed", "start_time": "Tue, 01 Sep 2026 10:00:00 +0000"},
    )
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    fetch.fetch_recording(RE, "mp3", settings, redis, session)
    sidecar.remove(settings.recordings_dir, RE, "mp3")
    assert fetch.fetch_recording(RE, "mp3", settings, redis, session).result == "cached"
    healed = sidecar.read(settings.recordings_dir, RE, "mp3")
    assert (healed.call_sid, healed.recorded_at) == (CA, "2026-09-01T10:00:00+00:00")


def test_a_malformed_call_sid_from_a_task_is_replaced_by_twilios(settings, redis, twilio, session):
    twilio.get(resource(settings), json={"sid": RE, "call_sid": CA, "status": "completed"})
    twilio.get(media(settings), body=MP3, headers={"Content-Length": str(len(MP3))})
    assert fetch.fetch_recording(RE, "mp3", settings, redis, session, owner_sid="../../etc").result == "downloaded"
    assert sidecar.read(settings.recordings_dir, RE, "mp3").call_sid == CA


def test_call_twilio_maps_what_the_package_raises_but_not_our_own_mistakes():
    def garbled():
        raise ValueError("day is out of range for month")

    with pytest.raises(UpstreamError, match="not understood"):
        twilio_api.call_twilio(garbled)
    with pytest.raises(TypeError):
        twilio_api.call_twilio(garbled, unexpected_keyword=1)
