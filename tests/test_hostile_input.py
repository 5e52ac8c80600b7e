"""Property-based tests: whatever arrives, never a 5xx, never a path outside the volume."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.support import ACCOUNT_SID, AUTH_TOKEN, sent_tasks
from worker import sidecar, signing, storage
from worker.errors import InvalidSid
from worker.sids import is_sid

PROPERTY = hyp_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

FIELDS = ["AccountSid", "CallSid", "RecordingSid", "RecordingStatus", "RecordingUrl", "RecordingStartTime", "X"]
sid_like = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"(RE|CA|AC|re|ca)[0-9a-fA-F./%]{0,40}", fullmatch=True),
    st.sampled_from(["RE" + "a" * 32, "CA" + "b" * 32, "../" * 10, "%2e%2e%2f", "\x00", "ＲＥ" + "0" * 32]),
)
form_values = st.dictionaries(st.sampled_from(FIELDS), sid_like, max_size=len(FIELDS))


def assert_valid_task_args(sent: list) -> None:
    for name, args in sent:
        if name == "recordings.fetch":
            assert is_sid(args[0], "RE") and args[1] in ("mp3", "wav")
            assert args[2] is None or is_sid(args[2], "CA")
        elif name == "recordings.record_leg":
            assert is_sid(args[0], "CA") and is_sid(args[1], "CA")


@PROPERTY
@given(params=form_values, signed=st.booleans(), path=st.sampled_from(["recording-status", "call-status"]))
def test_webhooks_never_answer_5xx_and_enqueue_only_valid_sids(client, app, params, signed, path):
    params = {"AccountSid": ACCOUNT_SID, **params}
    url = f"http://cache.test/twilio/{path}"
    headers = {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params)} if signed else {}
    response = client.post(f"/twilio/{path}", data=params, headers=headers)
    assert response.status_code < 500
    if not signed:
        assert response.status_code == 403
    assert_valid_task_args(sent_tasks(app))


@PROPERTY
@given(sid=st.text(max_size=100), fmt=st.text(max_size=10))
def test_api_never_answers_5xx(client, app, sid, fmt):
    response = client.get(
        "/api/recordings/" + quote(sid, safe=""),
        query_string={"format": fmt},
        headers={"Authorization": "Bearer test-api-token"},
    )
    assert response.status_code < 500
    assert_valid_task_args(sent_tasks(app))


@PROPERTY
@given(original=st.text(max_size=200))
@example(original="//[x/recordings/RE" + "a" * 32 + ".mp3")  # urlsplit: "Invalid IPv6 URL"
def test_playback_miss_never_answers_5xx(client, app, original):
    assume("\n" not in original and "\r" not in original)  # not sendable as a header at all
    response = client.get("/internal/playback-miss", headers={"X-Original-URI": original})
    assert response.status_code in (403, 404)
    assert sent_tasks(app) == []


@pytest.mark.parametrize(
    "query",
    [
        "expires=%C2%B2&sig=x",
        f"expires={'9' * 5000}&sig=x",
        "expires=4102444800&sig=%C3%A9",
        "expires=4102444800&sig=%00",
    ],
)
def test_playback_miss_refuses_odd_expires_and_sig(client, app, query):
    # nginx's secure_link refuses these first; the view must too, reached any other way.
    original = f"/recordings/RE{'a' * 32}.mp3?{query}"
    response = client.get("/internal/playback-miss", headers={"X-Original-URI": original})
    assert response.status_code == 403
    assert sent_tasks(app) == []


@PROPERTY
@given(sid=sid_like, fmt=st.sampled_from(["mp3", "wav"]))
def test_correctly_signed_miss_enqueues_only_well_formed_sids(client, app, sid, fmt):
    assume("\n" not in sid and "\r" not in sid)  # not sendable as a header at all
    path = f"/recordings/{sid}.{fmt}"
    url = signing.signed_url("RE" + "a" * 32, fmt, "test-signing-key-0123456789", 60)
    query = url.split("?", 1)[1]
    expires = query.split("&")[0].split("=")[1]
    sig = signing.signature(path, int(expires), "test-signing-key-0123456789")
    response = client.get("/internal/playback-miss", headers={"X-Original-URI": f"{path}?expires={expires}&sig={sig}"})
    assert response.status_code in (202, 404)
    for _name, args in sent_tasks(app):
        assert is_sid(args[0], "RE") or is_sid(args[0], "CA")


@pytest.mark.parametrize("kind", ["media", "sidecar"])
@hyp_settings(max_examples=300, deadline=None)
@given(sid=sid_like)
def test_storage_paths_stay_inside_the_volume(kind, sid):
    root = Path("/volume/recordings")
    try:
        path = storage.media_path(root, sid, "mp3") if kind == "media" else sidecar.path(root, sid, "mp3")
    except InvalidSid:
        return
    assert path.parent == root / sid[-2:] and path.parent.name in {f"{n:02x}" for n in range(256)}
    assert "/" not in path.name and ".." not in path.name
