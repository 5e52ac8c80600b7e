"""Every kind of recording a Twilio account produces, end to end: real
redis-server, Celery worker, gunicorn, nginx and the Twilio simulator."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulator.callbacks import place_call, post_callback, recording_status_params
from stack.local import Stack
from stack.ports import wait_for
from worker import signing, storage

pytestmark = [pytest.mark.e2e, pytest.mark.twilio_kinds]

# A short backoff, and a budget of one retry for faults: what the processing test needs to show.
QUICK = {"RETRY_BACKOFF_SECONDS": "0.2", "RETRY_BACKOFF_MAX_SECONDS": "0.5", "DOWNLOAD_MAX_RETRIES": "1"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signed(stack: Stack, sid: str, fmt: str = "mp3") -> str:
    return stack.http_url + signing.signed_url(sid, fmt, stack.signing_key, 600)


def described(stack: Stack, sid: str, fmt: str = "mp3") -> dict:
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    url = f"{stack.http_url}/api/recordings/{sid}?format={fmt}"
    return requests.get(url, headers=headers, timeout=10).json()


def _running(tmp_path_factory, name: str, workers: int = 1, concurrency: int = 1, **settings: str):
    """A stack with QUICK and ``settings``, started, and stopped when the fixture that yields from it ends."""
    with Stack(tmp_path_factory.mktemp(name), overrides={**QUICK, **settings}) as running:
        yield running.start_all(workers=workers, concurrency=concurrency)


@pytest.fixture(scope="module")
def kinds_stack(tmp_path_factory):
    yield from _running(tmp_path_factory, "kinds", concurrency=2)


@pytest.mark.parametrize(("twilio_status", "error_code"), [("absent", 16101), ("absent", 16102), ("failed", 16104)])
def test_an_absent_or_failed_recording_is_final_404_with_its_reason(kinds_stack, twilio_status, error_code):
    stack = kinds_stack
    call = place_call(
        stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, status=twilio_status, error_code=error_code
    )
    assert set(call["callback_statuses"]) == {204}
    sid = call["recording_sid"]
    played = requests.get(signed(stack, sid), timeout=10)
    assert played.status_code == 404
    assert played.json()["status"] == twilio_status and played.json()["error_code"] == error_code
    assert (described(stack, sid)["status"], described(stack, sid)["error_code"]) == (twilio_status, error_code)
    assert stack.media_gets(sid) == 0  # never asked for media Twilio does not have


def test_a_play_before_the_callback_asks_twilio_once_then_answers_404(kinds_stack):
    stack = kinds_stack
    call = stack.sim("POST", "/_sim/calls", json={"size": 65536, "status": "absent"}).json()  # no callbacks
    sid = call["recording_sid"]
    first = requests.get(signed(stack, sid), timeout=10)
    assert first.status_code == 202  # unknown yet: the worker asks Twilio

    def final() -> dict | None:  # the 404's body (a 404 Response itself is falsy)
        response = requests.get(signed(stack, sid), timeout=10)
        return response.json() if response.status_code == 404 else None

    assert wait_for(final, 30, "the play to learn the recording is absent")["error_code"] == 16101
    assert stack.media_gets(sid) == 0  # Twilio's resource said absent: no media GET at all
    for _ in range(3):
        assert requests.get(signed(stack, sid), timeout=10).status_code == 404
    assert stack.media_gets(sid) == 0


def test_a_recording_still_processing_is_waited_for_beyond_the_retry_budget(kinds_stack):
    stack = kinds_stack
    # Media 404 (processing) for the first 6 GETs; DOWNLOAD_MAX_RETRIES is 1.
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, ready_after=6)
    sid = call["recording_sid"]

    def played():
        response = requests.get(signed(stack, sid), timeout=10)
        return response.status_code == 200 and response

    assert wait_for(played, 60, "the recording once Twilio has processed it").content
    assert stack.media_gets(sid) == 7
    assert described(stack, sid)["status"] == "cached"


def _cli(stack: Stack, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args], env=stack.env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _playable(stack: Stack, sid: str, fmt: str = "mp3") -> bytes:
    def played():
        response = requests.get(signed(stack, sid, fmt), timeout=10)
        return response.content if response.status_code == 200 else None

    return wait_for(played, 30, f"{sid} playable")


def test_a_conference_recording_plays_by_its_recording_sid_and_its_conference_sid(kinds_stack):
    stack = kinds_stack
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, conference=True)
    assert call["recordings"][0]["call_sid"] is None  # filed under the conference alone
    assert set(call["callback_statuses"]) == {204}  # its callbacks (ConferenceSid, no CallSid) accepted
    sid, conference = call["recording_sid"], call["conference_sid"]
    body = requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3", timeout=10).content
    assert _playable(stack, sid) == body
    assert _playable(stack, conference) == body  # the conference's latest recording
    about = described(stack, conference)
    assert (about["status"], about["recording_sid"], about["conference_sid"]) == ("cached", sid, conference)
    assert about["call_sid"] is None
    assert stack.media_gets(sid) == 1


def test_a_conference_sid_asked_first_finds_its_latest_recording(kinds_stack):
    stack = kinds_stack
    call = stack.sim("POST", "/_sim/calls", json={"size": 65536, "conference": True, "recordings": 2}).json()
    latest, conference = call["recording_sid"], call["conference_sid"]
    assert requests.get(signed(stack, conference), timeout=10).status_code == 202  # never announced: a miss
    body = requests.get(f"{stack.sim_url}/_sim/media/{latest}.mp3", timeout=10).content
    assert _playable(stack, conference) == body
    assert stack.media_gets(latest) == 1


def test_reconcile_fetches_a_conference_recording_and_links_its_conference(kinds_stack):
    stack = kinds_stack
    call = stack.sim("POST", "/_sim/calls", json={"size": 4096, "conference": True}).json()  # no callbacks
    report = _cli(stack, "reconcile")
    assert report["enqueued"] >= 1
    sid, conference = call["recording_sid"], call["conference_sid"]
    wait_for(lambda: storage.media_path(stack.recordings, conference, "mp3").exists(), 30, "the conference linked")
    assert storage.media_path(stack.recordings, conference, "mp3").resolve().name == f"{sid}.mp3"
    assert stack.media_gets(sid) == 1


def test_a_call_is_kept_in_the_dual_channel_twilio_recorded(kinds_stack):
    stack = kinds_stack
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token)
    sid = call["recording_sid"]
    body = _playable(stack, sid)
    assert sha256(body) == call["recordings"][0]["mp3"]["sha256"]  # as recorded: no RequestedChannels
    assert described(stack, sid)["channels"] == 2
    assert stack.sim("GET", "/_sim/stats").json()["requested_channels"][sid] == {"as-recorded": 1}


@pytest.fixture(scope="module")
def mono_stack(tmp_path_factory):
    yield from _running(tmp_path_factory, "mono", RECORDING_CHANNELS="mono")


def test_recording_channels_mono_downloads_the_downmix(mono_stack):
    stack = mono_stack
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token)
    sid = call["recording_sid"]
    body = _playable(stack, sid)
    assert body == requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3?channels=1", timeout=10).content
    assert described(stack, sid)["channels"] == 1
    assert stack.sim("GET", "/_sim/stats").json()["requested_channels"][sid] == {"1": 1}


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory):
    """Two workers × three processes that may ask Twilio only two things at once."""
    limits = {"TWILIO_MAX_CONCURRENT_REQUESTS": "2", "DOWNLOAD_MAX_RETRIES": "8"}
    yield from _running(tmp_path_factory, "limited", workers=2, concurrency=3, **limits)


def _download_all(stack: Stack, count: int) -> list[str]:
    calls = [stack.sim("POST", "/_sim/calls", json={"size": 65536, "throughput": 262_144}).json() for _ in range(count)]
    for call in calls:  # Twilio's completed callbacks, all at once
        params = recording_status_params(call["recordings"][0], stack.sim_url, stack.account_sid, "completed")
        assert post_callback(stack.http_url + "/twilio/recording-status", params, stack.auth_token).status_code == 204
    sids = [call["recording_sid"] for call in calls]
    for sid in sids:
        wait_for(lambda s=sid: described(stack, s)["status"] == "cached", 60, f"{sid} cached")
    return sids


def test_six_processes_never_ask_twilio_more_than_the_limit_at_once(limited_stack):
    stack = limited_stack
    stack.sim("POST", "/_sim/reset", json={"stats_only": True})
    stack.sim("POST", "/_sim/limits", json={"max_concurrent": 2})
    try:
        sids = _download_all(stack, 12)
        concurrency = stack.sim("GET", "/_sim/stats").json()["concurrency"]
        assert concurrency["over_limit"] == 0  # Twilio never had to refuse one
        assert concurrency["in_flight_max"] == 2  # and the limit was used to the full
        assert [stack.media_gets(sid) for sid in sids] == [1] * 12
    finally:
        stack.sim("POST", "/_sim/limits", json={"max_concurrent": None})


def test_twilios_429_is_waited_out_and_every_recording_arrives(limited_stack):
    stack = limited_stack
    stack.sim("POST", "/_sim/reset", json={"stats_only": True})
    # Another client of the account takes one of the two: Twilio refuses the second, with Retry-After.
    stack.sim("POST", "/_sim/limits", json={"max_concurrent": 1, "retry_after": 1})
    try:
        sids = _download_all(stack, 6)
        assert stack.sim("GET", "/_sim/stats").json()["concurrency"]["over_limit"] >= 1
        assert all(described(stack, sid)["status"] == "cached" for sid in sids)
    finally:
        stack.sim("POST", "/_sim/limits", json={"max_concurrent": None})


def _key_pair(folder: Path, sid: str) -> str:
    """A private key in ``folder`` as ``<sid>.pem``; its public half as PEM text."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / f"{sid}.pem").write_bytes(private)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


KEY_SID, ROTATED_SID, UNKNOWN_SID = "CR" + "1" * 32, "CR" + "2" * 32, "CR" + "3" * 32


@pytest.fixture(scope="module")
def encrypted_stack(tmp_path_factory):
    """A WAV stack holding two private keys (a rotation), and a simulator that also knows a third."""
    keys = tmp_path_factory.mktemp("keys")
    public = {sid: _key_pair(keys, sid) for sid in (KEY_SID, ROTATED_SID)}
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # a key whose private half this service lacks
    public[UNKNOWN_SID] = _key_pair(elsewhere, UNKNOWN_SID)
    overrides = {**QUICK, "RECORDING_FORMAT": "wav", "TWILIO_ENCRYPTION_KEYS_DIR": str(keys)}
    with Stack(tmp_path_factory.mktemp("encrypted"), overrides=overrides) as running:
        running.start_all(workers=1, concurrency=2)
        for sid, pem in public.items():
            running.sim("POST", "/_sim/keys", json={"public_key_sid": sid, "public_key_pem": pem})
        yield running


@pytest.mark.parametrize("key_sid", [KEY_SID, ROTATED_SID])
def test_an_encrypted_recording_is_kept_decrypted_and_plays(encrypted_stack, key_sid):
    stack = encrypted_stack
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, fmt="wav", encrypted=key_sid)
    sid = call["recording_sid"]
    plain = requests.get(f"{stack.sim_url}/_sim/media/{sid}.wav", timeout=10).content
    assert _playable(stack, sid, "wav") == plain  # the plaintext, served by nginx as any other
    assert sha256(plain) == call["expected"]["sha256"]
    assert stack.media_gets(sid, "wav") == 1


def test_a_recording_for_a_key_this_service_lacks_fails_naming_the_key(encrypted_stack):
    stack = encrypted_stack
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, encrypted=UNKNOWN_SID)
    sid = call["recording_sid"]
    wait_for(lambda: described(stack, sid, "wav")["status"] == "failed", 30, "the failure")
    about = described(stack, sid, "wav")
    assert f"no private key {UNKNOWN_SID}.pem" in about["error"]
    played = requests.get(signed(stack, sid, "wav"), timeout=10)
    assert played.status_code == 404 and UNKNOWN_SID in played.json()["reason"]  # final: no crash loop
    assert stack.media_gets(sid, "wav") == 0  # the key is looked for before the media GET


@pytest.mark.parametrize("knob", [{"tamper_at": 5000}, {"truncate_at": 40_000}], ids=["tampered", "truncated"])
def test_a_tampered_or_truncated_ciphertext_is_never_stored(encrypted_stack, knob):
    stack = encrypted_stack
    call = place_call(
        stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=65536, encrypted=KEY_SID, **knob
    )
    sid = call["recording_sid"]
    wait_for(lambda: described(stack, sid, "wav")["status"] == "failed", 60, "the download to fail")
    assert stack.media_gets(sid, "wav") == 2  # DOWNLOAD_MAX_RETRIES=1: tried twice
    assert not list(stack.recordings.glob(f"*/{sid}*"))  # nothing kept, not even a sidecar
    assert not [p for p in (stack.recordings / ".tmp").iterdir() if sid in p.name]  # nor a partial file


def test_a_subaccounts_recording_is_validated_and_fetched_with_its_own_credentials(kinds_stack):
    stack = kinds_stack
    sub = stack.sim("POST", "/_sim/subaccounts").json()
    call = place_call(stack.sim_url, stack.http_url, sub["account_sid"], sub["auth_token"])
    assert call["callback_statuses"][0] == 403  # not known yet: refused, and a sync asked for (later ones may pass)
    wait_for(lambda: _cli(stack, "sync-accounts")["subaccounts"] >= 1, 30, "the subaccount known")
    stack.sim("POST", "/_sim/reset", json={"stats_only": True})
    call = place_call(stack.sim_url, stack.http_url, sub["account_sid"], sub["auth_token"])
    assert set(call["callback_statuses"]) == {204}  # signed with the subaccount's token: accepted
    sid = call["recording_sid"]
    body = requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3", timeout=10).content
    assert _playable(stack, sid) == body
    about = described(stack, sid)
    assert about["account_sid"] == sub["account_sid"]
    assert set(stack.sim("GET", "/_sim/stats").json()["by_account"]) == {sub["account_sid"]}  # its own keys


def test_a_webhook_from_any_other_account_is_403(kinds_stack):
    stack = kinds_stack
    stranger = "AC" + "9" * 32
    params = {"AccountSid": stranger, "CallSid": "CA" + "1" * 32, "RecordingSid": "RE" + "1" * 32,
              "RecordingStatus": "completed"}  # fmt: skip
    answer = post_callback(stack.http_url + "/twilio/recording-status", params, "a-token-nobody-gave-us")
    assert answer.status_code == 403 and "subaccount" in answer.json()["error"]


@pytest.fixture(scope="module")
def dual_stack(tmp_path_factory):
    yield from _running(tmp_path_factory, "dual", RECORDING_CHANNELS="dual")


def test_recording_channels_dual_asks_for_a_conferences_parties_apart(dual_stack):
    stack = dual_stack
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, conference=True)
    sid = call["recording_sid"]
    assert call["recordings"][0]["channels"] == 1  # Twilio records a conference mono
    body = _playable(stack, call["conference_sid"])
    assert body == requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3?channels=2", timeout=10).content
    assert described(stack, sid)["channels"] == 2
    assert stack.sim("GET", "/_sim/stats").json()["requested_channels"][sid] == {"2": 1}
