"""Twilio callbacks through the Flask app: signatures, validation, enqueueing."""

from __future__ import annotations

import time

import pytest
from twilio.request_validator import RequestValidator

from tests.support import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, SIGNING_KEY, sent_tasks
from worker import signing, status

RE = "RE" + "4" * 32
CA = "CA" + "4" * 32
CHILD = "CA" + "5" * 32
PUBLIC = "http://cache.test"


def recording_params(**overrides):
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": CA,
        "RecordingSid": RE,
        "RecordingUrl": f"http://twilio.test/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE}",
        "RecordingStatus": "completed",
        "RecordingDuration": "12",
        "RecordingChannels": "1",
        "RecordingStartTime": "Tue, 01 Sep 2026 10:00:00 +0000",
        "RecordingSource": "DialVerb",
        "ErrorCode": "0",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def post_signed(client, path, params, token=AUTH_TOKEN, url=None):
    signature = RequestValidator(token).compute_signature(url or PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def test_completed_recording_is_enqueued_and_answered_204(client, app):
    response = post_signed(client, "/twilio/recording-status", recording_params())
    assert response.status_code == 204
    assert sent_tasks(app) == [("recordings.fetch", [RE, "mp3", CA, "2026-09-01T10:00:00+00:00"])]


def test_duplicate_webhooks_enqueue_once(client, app):
    for _ in range(5):
        assert post_signed(client, "/twilio/recording-status", recording_params()).status_code == 204
    assert len(sent_tasks(app)) == 1


@pytest.mark.parametrize("state", ["in-progress", "absent", "failed"])
def test_other_statuses_are_remembered_not_enqueued(client, app, state):
    assert post_signed(client, "/twilio/recording-status", recording_params(RecordingStatus=state)).status_code == 204
    assert sent_tasks(app) == []
    assert status.last_webhook(app.extensions["recording_cache"].redis, RE)["status"] == state


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("RecordingChannels", "3"),
        ("RecordingChannels", "two"),
        ("RecordingTrack", "sideways"),
        ("RecordingSource", "Fax"),
    ],
)
def test_channels_and_track_twilio_never_sends_are_400(client, app, field, value):
    response = post_signed(client, "/twilio/recording-status", recording_params(**{field: value}))
    assert response.status_code == 400 and field in response.get_json()["error"]
    assert sent_tasks(app) == []


def test_a_dual_channel_callback_with_its_track_is_enqueued(client, app):
    params = recording_params(RecordingChannels="2", RecordingTrack="both")
    assert post_signed(client, "/twilio/recording-status", params).status_code == 204
    assert len(sent_tasks(app)) == 1


CF = "CF" + "c" * 32


def test_a_conference_recording_without_a_call_is_enqueued_under_its_conference(client, app):
    params = recording_params(CallSid=None, ConferenceSid=CF, RecordingSource="StartConferenceRecordingAPI")
    assert post_signed(client, "/twilio/recording-status", params).status_code == 204
    assert sent_tasks(app) == [("recordings.fetch", [RE, "mp3", CF, "2026-09-01T10:00:00+00:00"])]


@pytest.mark.parametrize("conference", [None, "CF123", "CA" + "c" * 32, "../CF"])
def test_a_callback_with_neither_call_nor_conference_is_400(client, app, conference):
    params = recording_params(CallSid=None, ConferenceSid=conference)
    response = post_signed(client, "/twilio/recording-status", params)
    assert response.status_code == 400
    assert ("ConferenceSid" if conference else "CallSid") in response.get_json()["error"]
    assert sent_tasks(app) == []


@pytest.mark.parametrize(("state", "code", "kept"), [("absent", "16101", 16101), ("failed", "0", None)])
def test_an_absent_or_failed_recording_plays_404_with_its_reason_and_is_never_fetched(client, app, state, code, kept):
    params = recording_params(RecordingStatus=state, ErrorCode=code, RecordingDuration=None)
    assert post_signed(client, "/twilio/recording-status", params).status_code == 204
    path = f"/recordings/{RE}.mp3"
    expires = int(time.time()) + 60
    original = f"{path}?expires={expires}&sig={signing.signature(path, expires, SIGNING_KEY)}"
    played = client.get("/internal/playback-miss", headers={"X-Original-URI": original})
    assert played.status_code == 404
    assert played.get_json() == {
        "sid": RE,
        "status": state,
        "error_code": kept,
        "reason": f"Twilio marks this recording {state}: it has no media",
    }
    described = client.get(f"/api/recordings/{RE}", headers={"Authorization": f"Bearer {API_TOKEN}"}).get_json()
    assert (described["status"], described["error_code"]) == (state, kept)
    assert sent_tasks(app) == []  # neither the webhook nor the play asks Twilio


@pytest.mark.parametrize("code", ["sixteen", "-1", "1e5", "١٦١٠١", "1" * 12])
def test_a_malformed_error_code_is_400_and_changes_nothing(client, app, code):
    params = recording_params(RecordingStatus="absent", ErrorCode=code)
    response = post_signed(client, "/twilio/recording-status", params)
    assert response.status_code == 400 and "ErrorCode" in response.get_json()["error"]
    assert status.get_state(app.extensions["recording_cache"].redis, RE, "mp3") is None


@pytest.mark.parametrize(
    "signature_case",
    ["missing", "wrong token", "other url", "tampered body", "not ascii"],
)
def test_recording_status_rejects_bad_signature(client, app, signature_case):
    params = recording_params()
    headers = {}
    if signature_case == "not ascii":  # hmac.compare_digest refuses non-ASCII str
        headers["X-Twilio-Signature"] = "\xe9" * 28
    elif signature_case == "wrong token":
        headers["X-Twilio-Signature"] = RequestValidator("0" * 32).compute_signature(
            PUBLIC + "/twilio/recording-status", params
        )
    elif signature_case == "other url":
        headers["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(
            "http://evil.test/twilio/recording-status", params
        )
    elif signature_case == "tampered body":
        headers["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(
            PUBLIC + "/twilio/recording-status", params
        )
        params = recording_params(RecordingSid="RE" + "9" * 32)
    response = client.post("/twilio/recording-status", data=params, headers=headers)
    assert response.status_code == 403
    assert sent_tasks(app) == []


def test_signature_covers_the_query_string(client, app):
    params = recording_params()
    url = PUBLIC + "/twilio/recording-status?tenant=a"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    ok = client.post("/twilio/recording-status?tenant=a", data=params, headers={"X-Twilio-Signature": signature})
    bad = client.post("/twilio/recording-status?tenant=b", data=params, headers={"X-Twilio-Signature": signature})
    assert (ok.status_code, bad.status_code) == (204, 403)


def test_another_account_is_refused(client, app):
    response = post_signed(client, "/twilio/recording-status", recording_params(AccountSid="AC" + "b" * 32))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("RecordingSid", None),
        ("RecordingSid", "RE123"),
        ("RecordingSid", "../../etc/passwd"),
        ("RecordingSid", CA),
        ("CallSid", None),
        ("CallSid", "CA" + "x" * 32),
        ("RecordingStatus", "done"),
        ("RecordingStatus", None),
        ("RecordingStartTime", "yesterday"),
        ("RecordingStartTime", "Fri, 31 Dec 9999 23:59:59 -0001"),  # past year 9999 in UTC
        ("RecordingStartTime", "Mon, \u0660\u0661 Jan \u0662\u0660\u0662\u0666 00:00:00 +0000"),  # Arabic-Indic digits
    ],
)
def test_malformed_fields_get_400_naming_the_field(client, app, field, value):
    response = post_signed(client, "/twilio/recording-status", recording_params(**{field: value}))
    assert response.status_code == 400
    assert field in response.get_json()["error"]
    assert sent_tasks(app) == []


def test_foreign_recording_url_is_never_used(client, app):
    params = recording_params(RecordingUrl="http://169.254.169.254/latest/meta-data")
    assert post_signed(client, "/twilio/recording-status", params).status_code == 204
    name, args = sent_tasks(app)[0]
    assert "169.254" not in repr(args)


@pytest.mark.parametrize("url", ["https://[x/2010-04-01/Recordings", "http://[::1", "not a url"])
def test_malformed_recording_url_is_still_a_204(client, app, url):
    # A signed callback is Twilio's; its RecordingUrl is only logged, never fetched.
    assert post_signed(client, "/twilio/recording-status", recording_params(RecordingUrl=url)).status_code == 204
    assert [name for name, _ in sent_tasks(app)] == ["recordings.fetch"]


def test_huge_body_is_refused(client, app):
    response = client.post("/twilio/recording-status", data={"x": "y" * 100_000}, headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 413


def test_child_leg_is_recorded(client, app):
    params = {"AccountSid": ACCOUNT_SID, "CallSid": CHILD, "ParentCallSid": CA, "CallStatus": "completed"}
    assert post_signed(client, "/twilio/call-status", params).status_code == 204
    assert sent_tasks(app) == [("recordings.record_leg", [CHILD, CA, "mp3"])]


def test_call_status_rejects_a_non_ascii_signature(client, app):
    params = {"AccountSid": ACCOUNT_SID, "CallSid": CHILD, "ParentCallSid": CA}
    response = client.post("/twilio/call-status", data=params, headers={"X-Twilio-Signature": "\xe9"})
    assert response.status_code == 403
    assert sent_tasks(app) == []


def test_call_status_rejects_bad_signature(client, app):
    params = {"AccountSid": ACCOUNT_SID, "CallSid": CHILD, "ParentCallSid": CA}
    response = client.post("/twilio/call-status", data=params, headers={"X-Twilio-Signature": "bogus"})
    assert response.status_code == 403
    assert sent_tasks(app) == []


def test_redis_down_answers_503_so_twilio_retries(tmp_path):
    from tests.support import make_settings
    from web import create_app

    app = create_app(make_settings(tmp_path, REDIS_URL="redis://127.0.0.1:1/0"))
    response = post_signed(app.test_client(), "/twilio/recording-status", recording_params())
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_the_recording_source_a_callback_names_is_shown_by_the_api(client, app):
    params = recording_params(RecordingStatus="in-progress", RecordingSource="StartCallRecordingAPI")
    assert post_signed(client, "/twilio/recording-status", params).status_code == 204
    described = client.get(f"/api/recordings/{RE}", headers={"Authorization": f"Bearer {API_TOKEN}"}).get_json()
    assert described["source"] == "StartCallRecordingAPI"
