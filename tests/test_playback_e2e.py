"""Playback through real nginx: Range, signatures, misses, call SIDs, the API."""

from __future__ import annotations

import hashlib
import json
import signal
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from simulator.callbacks import place_call
from stack.ports import wait_for
from worker import signing, storage

pytestmark = pytest.mark.e2e

SIZE = 1 << 20


def signed(stack, sid: str, fmt: str = "mp3", ttl: int = 600) -> str:
    return stack.http_url + signing.signed_url(sid, fmt, stack.signing_key, ttl)


def wait_playable(stack, sid: str, fmt: str = "mp3", timeout: float = 30) -> requests.Response:
    url = signed(stack, sid, fmt)
    return wait_for(lambda: (r := requests.get(url, timeout=5)).status_code == 200 and r, timeout, f"{sid} playable")


@pytest.fixture(scope="module")
def cached(stack):
    """A 1 MiB recording announced by Twilio's callbacks and cached."""
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=SIZE)
    sid = call["recording_sid"]
    wait_for(lambda: storage.is_cached(stack.recordings, sid, "mp3"), 30, "cached")
    body = requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3", timeout=10).content
    return {"sid": sid, "call": call, "body": body}


@pytest.mark.parametrize(
    ("range_header", "status", "start", "end"),
    [
        (None, 200, 0, SIZE - 1),
        ("bytes=0-1", 206, 0, 1),
        ("bytes=0-65535", 206, 0, 65535),
        ("bytes=1000-1999", 206, 1000, 1999),
        ("bytes=-500", 206, SIZE - 500, SIZE - 1),
        ("bytes=1048000-", 206, 1048000, SIZE - 1),
        ("bytes=1048000-99999999", 206, 1048000, SIZE - 1),
    ],
)
def test_range_requests_are_served_by_nginx(stack, cached, range_header, status, start, end):
    headers = {"Range": range_header} if range_header else {}
    response = requests.get(signed(stack, cached["sid"]), headers=headers, timeout=5)
    assert response.status_code == status
    assert response.content == cached["body"][start : end + 1]
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert response.headers["Cache-Control"].startswith("private")
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    if status == 206:
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"


@pytest.mark.parametrize(("range_header", "status"), [("items=0-1", 200), ("BYTES=0-1", 206)])
def test_accept_ranges_is_sent_once_whatever_the_range_unit(stack, cached, range_header, status):
    response = requests.get(signed(stack, cached["sid"]), headers={"Range": range_header}, timeout=5)
    assert response.status_code == status
    assert response.raw.headers.getlist("Accept-Ranges") == ["bytes"]


def test_full_body_matches_the_simulator_bytes(stack, cached):
    response = requests.get(signed(stack, cached["sid"]), timeout=5)
    assert hashlib.sha256(response.content).hexdigest() == cached["call"]["expected"]["sha256"]


def test_unsatisfiable_range_is_416(stack, cached):
    response = requests.get(signed(stack, cached["sid"]), headers={"Range": f"bytes={SIZE}-"}, timeout=5)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"


def test_conditional_request_is_304(stack, cached):
    first = requests.get(signed(stack, cached["sid"]), timeout=5)
    again = requests.get(signed(stack, cached["sid"]), headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
    assert again.status_code == 304


def test_call_sid_plays_the_recording(stack, cached):
    response = requests.get(signed(stack, cached["call"]["call_sid"]), headers={"Range": "bytes=0-9"}, timeout=5)
    assert response.status_code == 206
    assert response.content == cached["body"][:10]


def test_hit_plays_with_the_web_tier_stopped(stack, cached):
    """SIGSTOP every gunicorn process: a cached recording still plays from nginx alone."""
    web = stack.procs["web"]
    web.signal(signal.SIGSTOP)
    try:
        response = requests.get(signed(stack, cached["sid"]), headers={"Range": "bytes=0-99"}, timeout=5)
        assert response.status_code == 206
        assert response.content == cached["body"][:100]
    finally:
        web.signal(signal.SIGCONT)


def _bad_signatures(stack, sid: str) -> dict[str, str]:
    path = signing.playback_path(sid, "mp3")
    good = signing.signed_url(sid, "mp3", stack.signing_key, 600)
    query = good.split("?", 1)[1]
    expires = int(query.split("&")[0].split("=")[1])
    other = "RE" + "0" * 32
    return {
        "missing": path,
        "no sig": f"{path}?expires={expires}",
        "tampered": f"{path}?expires={expires}&sig=AAAAAAAAAAAAAAAAAAAAAA",
        "extended expiry": f"{path}?expires={expires + 1000}&{query.split('&')[1]}",
        "expired": signing.signed_url(sid, "mp3", stack.signing_key, ttl=-10),
        "other sid": path.replace(sid, other) + "?" + query,
        "other format": path.replace(".mp3", ".wav") + "?" + query,
        "other key": signing.signed_url(sid, "mp3", "another-key-0123456789", 600),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "no sig", "tampered", "extended expiry", "expired", "other sid", "other format", "other key"],
)
def test_bad_playback_signature_is_403(stack, cached, case):
    url = stack.http_url + _bad_signatures(stack, cached["sid"])[case]
    response = requests.get(url, timeout=5)
    assert response.status_code == 403
    assert cached["body"][:64] not in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/recordings/RE123.mp3",
        "/recordings/" + "RE" + "0" * 32 + ".ogg",
        "/recordings/" + "AC" + "0" * 32 + ".mp3",
        "/recordings/../../etc/passwd",
        "/recordings/%2e%2e/%2e%2e/etc/passwd",
        "/recordings/..%2f..%2fetc%2fpasswd",
        "/recordings/%252e%252e%252fetc%252fpasswd",
        "/recordings/RE" + "0" * 32 + ".mp3%00.json",
        "/recordings/" + "RE" + "0" * 32 + ".mp3.json",
        "/recordings/.state/demo-secrets.json",
        "/recordings/" + "R" * 5000 + ".mp3",
        "/recordings/" + quote("ＲＥ") + "0" * 32 + ".mp3",
    ],
)
def test_malformed_playback_paths_never_reach_the_disk(stack, cached, path):
    response = requests.get(stack.http_url + path, timeout=5)
    assert response.status_code in (400, 404, 414)
    assert b"root:" not in response.content and b"sha256" not in response.content


def test_sidecar_of_a_cached_recording_is_not_served(stack, cached):
    url = signed(stack, cached["sid"]).replace(".mp3?", ".mp3.json?")
    assert requests.get(url, timeout=5).status_code == 404


def test_miss_answers_202_then_the_hit_follows(stack):
    call = stack.sim("POST", "/_sim/calls", json={"size": 65536}).json()
    sid = call["recording_sid"]
    first = requests.get(signed(stack, sid), headers={"Range": "bytes=0-"}, timeout=5)
    assert first.status_code == 202
    assert int(first.headers["Retry-After"]) >= 1
    assert first.json()["status"] == "pending"
    response = wait_playable(stack, sid)
    assert hashlib.sha256(response.content).hexdigest() == call["recordings"][0]["mp3"]["sha256"]


def test_access_log_names_the_sid_and_the_cache_outcome(stack, cached):
    miss_sid = stack.sim("POST", "/_sim/calls", json={"size": 65536}).json()["recording_sid"]
    assert requests.get(signed(stack, miss_sid), timeout=5).status_code == 202
    assert requests.get(signed(stack, cached["sid"]), headers={"Range": "bytes=0-1"}, timeout=5).status_code == 206
    assert requests.get(stack.http_url + "/healthz", timeout=5).status_code == 200

    def lines() -> list[dict]:
        log = stack.procs["nginx"].log().splitlines()
        return [json.loads(line) for line in log if line.startswith('{"ts"')]

    wait_for(lambda: any(line["path"] == "/healthz" for line in lines()), 5, "the healthz line")
    misses = [line for line in lines() if line["sid"] == miss_sid]
    assert [(line["status"], line["cache"]) for line in misses] == [(202, "miss")]
    hits = [line for line in lines() if line["sid"] == cached["sid"] and line["range"] == "bytes=0-1"]
    assert hits and all((line["status"], line["cache"]) == (206, "hit") for line in hits)
    health = [line for line in lines() if line["path"] == "/healthz"]
    assert [(line["sid"], line["cache"]) for line in health] == [("", "")] * len(health)
    assert "uninitialized" not in stack.procs["nginx"].log()


@pytest.mark.parametrize(
    "variant",
    [
        lambda url: url.replace("/recordings/RE", "/recordings/R%45"),  # a client that percent-encodes
        lambda url: url.replace("/recordings/", "/recordings//"),
        lambda url: url + "=",  # base64 padding on sig, which secure_link accepts
    ],
    ids=["encoded", "double-slash", "padded-sig"],
)
def test_a_miss_accepts_every_url_a_hit_accepts(stack, variant):
    call = stack.sim("POST", "/_sim/calls", json={"size": 65536}).json()
    url = variant(signed(stack, call["recording_sid"]))

    def status() -> int:
        request = requests.Request("GET", url).prepare()
        request.url = url  # as sent: requests would decode %45 back to E
        with requests.Session() as session:
            return session.send(request, timeout=5).status_code

    assert status() == 202  # a miss, checked by the web tier
    assert wait_for(lambda: status() == 200, 30, "the hit, checked by nginx")


def test_thirty_concurrent_range_requests_make_one_upstream_get(stack):
    call = stack.sim("POST", "/_sim/calls", json={"size": SIZE, "throughput": SIZE}).json()  # ~1 s download
    sid = call["recording_sid"]
    url = signed(stack, sid)

    def play(index: int) -> int:
        return requests.get(url, headers={"Range": f"bytes={index * 1000}-"}, timeout=10).status_code

    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(play, range(30)))
    assert set(statuses) <= {202, 206}
    assert 202 in statuses
    wait_playable(stack, sid)
    assert stack.media_gets(sid) == 1


def test_unknown_recording_becomes_404_after_the_worker_looked(stack):
    sid = "RE" + "e" * 32
    assert requests.get(signed(stack, sid), timeout=5).status_code == 202
    wait_for(lambda: requests.get(signed(stack, sid), timeout=5).status_code == 404, 20, "404 for an unknown SID")


def test_child_leg_plays_through_the_call_status_webhook(stack):
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=65536, child=True)
    assert set(call["callback_statuses"]) == {204}
    child = call["child_call_sid"]
    wait_for(lambda: storage.parent_of(stack.recordings, child) == call["call_sid"], 20, "leg recorded")
    response = wait_playable(stack, child)
    assert hashlib.sha256(response.content).hexdigest() == call["expected"]["sha256"]
    assert stack.media_gets(call["recording_sid"]) == 1


def test_child_leg_plays_through_a_rest_lookup(stack):
    """No webhook at all: the worker asks Twilio for the child's parent and its recordings."""
    call = stack.sim("POST", "/_sim/calls", json={"size": 65536, "child": True}).json()
    child = call["child_call_sid"]
    assert requests.get(signed(stack, child), timeout=5).status_code == 202
    response = wait_playable(stack, child)
    assert hashlib.sha256(response.content).hexdigest() == call["recordings"][0]["mp3"]["sha256"]
    assert storage.parent_of(stack.recordings, child) == call["call_sid"]
    assert stack.media_gets(call["recording_sid"]) == 1


def test_call_with_several_recordings_plays_the_latest(stack):
    call = stack.sim("POST", "/_sim/calls", json={"size": 4096, "recordings": 3}).json()
    response = wait_playable(stack, call["call_sid"])
    latest = call["recordings"][-1]
    assert hashlib.sha256(response.content).hexdigest() == latest["mp3"]["sha256"]


def api(stack, method: str, path: str, token: str | None = "ok") -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {stack.api_token if token == 'ok' else token}"}
    return requests.request(method, stack.http_url + path, headers=headers, timeout=5)


def test_api_describes_a_cached_recording_with_a_playable_url(stack, cached):
    answer = api(stack, "GET", f"/api/recordings/{cached['sid']}")
    assert answer.headers["Cache-Control"] == "no-store"  # it holds a signed URL
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    info = answer.json()
    assert info["status"] == "cached"
    assert info["recording_sid"] == cached["sid"]
    assert info["call_sid"] == cached["call"]["call_sid"]
    assert info["bytes"] == SIZE
    assert requests.get(stack.http_url + info["url"], timeout=5).status_code == 200


def test_api_by_call_sid(stack, cached):
    info = api(stack, "GET", f"/api/recordings/{cached['call']['call_sid']}").json()
    assert (info["status"], info["recording_sid"]) == ("cached", cached["sid"])


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 403)])
def test_api_requires_the_token(stack, cached, token, status):
    answer = api(stack, "GET", f"/api/recordings/{cached['sid']}", token)
    assert answer.status_code == status
    assert "error" in answer.json()
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_method_the_api_does_not_take_is_405_with_allow(stack, cached):
    answer = api(stack, "DELETE", f"/api/recordings/{cached['sid']}")
    assert answer.status_code == 405
    assert "GET" in answer.headers["Allow"] and "error" in answer.json()


def test_a_redirect_does_not_echo_a_spoofed_host(stack):
    # nginx answers /api with a 301 to /api/; an absolute Location would carry the client's Host.
    answer = requests.get(stack.http_url + "/api", headers={"Host": "evil.example"}, allow_redirects=False, timeout=5)
    assert answer.status_code == 301
    assert answer.headers["Location"] == "/api/"


def test_api_unknown_sid_gives_a_url_before_the_file_exists(stack):
    sid = "RE" + "d" * 32
    info = api(stack, "GET", f"/api/recordings/{sid}").json()
    assert info["status"] == "unknown"
    assert info["url"].startswith(f"/recordings/{sid}.mp3?expires=")


@pytest.mark.parametrize("sid", ["RE123", "AC" + "0" * 32, "..%2f..%2fetc"])
def test_api_malformed_sid_is_400(stack, sid):
    assert api(stack, "GET", f"/api/recordings/{sid}").status_code in (400, 404)


def test_api_fetch_is_idempotent(stack):
    call = stack.sim("POST", "/_sim/calls", json={"size": 65536, "throughput": 65536}).json()
    sid = call["recording_sid"]
    answers = [api(stack, "POST", f"/api/recordings/{sid}/fetch") for _ in range(5)]
    assert {a.status_code for a in answers} == {202}
    assert sum(a.json()["enqueued"] for a in answers) == 1
    wait_playable(stack, sid)
    assert api(stack, "POST", f"/api/recordings/{sid}/fetch").status_code == 200
    assert stack.media_gets(sid) == 1


def test_healthz(stack):
    response = requests.get(stack.http_url + "/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "ok", "volume": "ok"}
