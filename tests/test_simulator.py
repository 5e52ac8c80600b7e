"""Tests for the Twilio REST API simulator (simulator/)."""

from __future__ import annotations

import array
import base64
import hashlib
import io
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import miniaudio
import pytest
import requests
from flask import Flask, request
from flask.testing import FlaskClient
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.serving import make_server

from simulator import audio, create_app, place_call
from simulator.__main__ import main as cli_main

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "simulator-test-token"
ROOT = Path(__file__).resolve().parents[1]
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()}
# Layer III tables (ISO 11172-3, 13818-3), for the versions and indexes the simulator emits.
MP3_VERSIONS = {3: "MPEG-1", 2: "MPEG-2"}
MP3_BITRATES = {"MPEG-1": {9: 128_000}, "MPEG-2": {12: 128_000}}
MP3_RATES = {"MPEG-1": {0: 44_100, 1: 48_000, 2: 32_000}, "MPEG-2": {0: 22_050, 1: 24_000, 2: 16_000}}


def api(path: str) -> str:
    """Return a path under the test account."""
    return f"/2010-04-01/Accounts/{ACCOUNT_SID}{path}"


@pytest.fixture
def client() -> FlaskClient:
    return create_app(ACCOUNT_SID, AUTH_TOKEN).test_client()


def new_call(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/_sim/calls", json=body)
    assert response.status_code == 201, response.json
    return response.json


def mp3_frame_length(header: bytes) -> int:
    """Decode an MPEG-1 or MPEG-2 Layer III header independently of the simulator."""
    assert header[0] == 0xFF and header[1] & 0xE0 == 0xE0, "no frame sync"
    assert (header[1] >> 1) & 3 == 1, "not Layer III"
    version = MP3_VERSIONS[(header[1] >> 3) & 3]
    bitrate = MP3_BITRATES[version][header[2] >> 4]
    rate = MP3_RATES[version][(header[2] >> 2) & 3]
    samples = 1152 if version == "MPEG-1" else 576
    return samples // 8 * bitrate // rate + ((header[2] >> 1) & 1)


# --- Flask test client: Twilio API surface -------------------------------------------


def test_api_demands_account_sid_and_token_as_basic_auth(client: FlaskClient) -> None:
    rec = new_call(client)["recording_sid"]
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{ACCOUNT_SID}:nope".encode()).decode()}
    for headers in ({}, wrong):
        for path in (f"/Recordings/{rec}.json", f"/Recordings/{rec}.mp3", "/Nothing.json"):
            response = client.get(api(path), headers=headers)
            assert response.status_code == 401
            assert response.json == {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            }
    assert client.get("/_sim/stats").json["unauthorized_total"] == 6


def test_unknown_resources_answer_twilio_404(client: FlaskClient) -> None:
    other_account = "AC" + "6" * 32
    for path in (
        api("/Recordings/RE" + "0" * 32 + ".json"),
        api("/Calls/CA" + "0" * 32 + ".json"),
        api("/Queues.json"),
        f"/2010-04-01/Accounts/{other_account}/Recordings.json",
    ):
        response = client.get(path, headers=BASIC)
        assert response.status_code == 404
        assert response.json["code"] == 20404
        assert response.json["message"] == f"The requested resource {path} was not found"


def test_recording_json_has_twilio_fields_and_formats(client: FlaskClient) -> None:
    created = new_call(client, size=48_000, child=True)
    rec = created["recording_sid"]
    body = client.get(api(f"/Recordings/{rec}.json"), headers=BASIC).json
    assert list(body) == [
        "account_sid",
        "api_version",
        "call_sid",
        "conference_sid",
        "date_created",
        "date_updated",
        "start_time",
        "duration",
        "sid",
        "price",
        "price_unit",
        "status",
        "channels",
        "source",
        "error_code",
        "uri",
        "encryption_details",
        "subresource_uris",
        "media_url",
    ]
    assert body["sid"] == rec and rec.startswith("RE") and len(rec) == 34
    assert body["call_sid"] == created["call_sid"]  # filed under the parent leg
    assert body["status"] == "completed" and body["duration"] == "3"
    assert body["source"] == "DialVerb" and body["channels"] == 2  # dual channel, Twilio's default since 2022
    assert body["date_created"].endswith(" +0000") and body["date_created"][3:5] == ", "
    assert body["uri"] == api(f"/Recordings/{rec}.json")
    assert body["media_url"] == "http://localhost" + api(f"/Recordings/{rec}")


def test_call_json_links_child_leg_to_parent(client: FlaskClient) -> None:
    created = new_call(client, child=True)
    parent = client.get(api(f"/Calls/{created['call_sid']}.json"), headers=BASIC).json
    child = client.get(api(f"/Calls/{created['child_call_sid']}.json"), headers=BASIC).json
    assert parent["parent_call_sid"] is None and parent["direction"] == "inbound"
    assert child["parent_call_sid"] == parent["sid"] and child["direction"] == "outbound-dial"
    assert child["status"] == "completed" and child["from"] and child["to"]
    assert child["subresource_uris"]["recordings"] == api(f"/Calls/{child['sid']}/Recordings.json")


def test_mp3_media_is_exact_size_valid_frames_and_matching_sha256(client: FlaskClient) -> None:
    created = new_call(client, size=50_001)
    rec = created["recordings"][0]
    response = client.get(api(f"/Recordings/{rec['sid']}.mp3"), headers=BASIC)
    data = response.data
    assert response.status_code == 200 and response.mimetype == "audio/mpeg"
    assert response.content_length == len(data) == rec["mp3"]["size"] == 50_001
    assert hashlib.sha256(data).hexdigest() == rec["mp3"]["sha256"]
    assert data == client.get(f"/_sim/media/{rec['sid']}.mp3").data
    offset = frames = 0
    while offset + 4 <= len(data):
        offset += mp3_frame_length(data[offset : offset + 4])
        frames += 1
    assert frames == 87  # 86 whole 576-byte frames (MPEG-2, 16 kHz, 128 kbps) and a trimmed last one


def test_wav_media_is_valid_pcm_and_is_served_without_extension(client: FlaskClient) -> None:
    created = new_call(client, size=32_045)  # odd: exercises the RIFF pad byte
    rec = created["recordings"][0]
    for path in (f"/Recordings/{rec['sid']}.wav", f"/Recordings/{rec['sid']}"):
        response = client.get(api(path), headers=BASIC)
        assert response.status_code == 200 and response.mimetype == "audio/x-wav"
        assert len(response.data) == response.content_length == 32_045
        assert hashlib.sha256(response.data).hexdigest() == rec["wav"]["sha256"]
    with wave.open(io.BytesIO(response.data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 4000)
        assert wav.getnframes() == (32_045 - 44) // 4
        samples = wav.readframes(wav.getnframes())
    assert int.from_bytes(response.data[4:8], "little") == 32_045 - 8
    peak = max(abs(sample) for sample in array.array("h", samples))
    assert 8000 < peak < 32_000  # speech-like and loud enough to hear, never clipped


@pytest.mark.parametrize(("body", "recorded"), [({}, 2), ({"conference": True}, 1), ({"channels": 1}, 1)])
def test_media_comes_as_recorded_or_as_requested_channels(client: FlaskClient, body, recorded) -> None:
    rec = new_call(client, size=32_044, **body)["recordings"][0]
    assert client.get(api(f"/Recordings/{rec['sid']}.json"), headers=BASIC).json["channels"] == recorded
    for query, channels in (("", recorded), ("?RequestedChannels=1", 1), ("?RequestedChannels=2", 2)):
        response = client.get(api(f"/Recordings/{rec['sid']}.wav{query}"), headers=BASIC)
        with wave.open(io.BytesIO(response.data)) as wav:
            assert wav.getnchannels() == channels
        mp3 = client.get(api(f"/Recordings/{rec['sid']}.mp3{query}"), headers=BASIC).data
        assert (mp3[3] >> 6 == 3) == (channels == 1)  # MPEG channel mode 3 is mono
        assert mp3 == client.get(f"/_sim/media/{rec['sid']}.mp3?channels={channels}").data
    assert client.get(api(f"/Recordings/{rec['sid']}.mp3?RequestedChannels=3"), headers=BASIC).status_code == 400
    assert client.get("/_sim/stats").json["requested_channels"][rec["sid"]] == {"as-recorded": 2, "1": 2, "2": 2}


def test_media_answers_404_until_ready_after_gets_are_spent(client: FlaskClient) -> None:
    rec = new_call(client, ready_after=2)["recording_sid"]
    url = api(f"/Recordings/{rec}.mp3")
    assert client.get(api(f"/Recordings/{rec}.json"), headers=BASIC).json["status"] == "processing"
    for _ in range(2):
        response = client.get(url, headers=BASIC)
        assert response.status_code == 404 and response.json["code"] == 20404
    assert client.get(url, headers=BASIC).status_code == 200
    assert client.get(api(f"/Recordings/{rec}.json"), headers=BASIC).json["status"] == "completed"
    assert client.get("/_sim/stats").json["media_gets"][rec] == {"mp3": 3, "wav": 0}


def test_ready_in_ms_holds_media_until_patched_ready(client: FlaskClient) -> None:
    rec = new_call(client, ready_in_ms=60_000)["recording_sid"]
    url = api(f"/Recordings/{rec}.wav")
    assert client.get(url, headers=BASIC).status_code == 404
    patched = client.patch(f"/_sim/recordings/{rec}", json={"ready": True})
    assert patched.status_code == 200 and patched.json["ready"] is True
    assert client.get(url, headers=BASIC).status_code == 200
    client.patch(f"/_sim/recordings/{rec}", json={"ready": None, "ready_in_ms": 50})
    assert client.get(url, headers=BASIC).status_code == 404
    time.sleep(0.06)
    assert client.get(url, headers=BASIC).status_code == 200


def test_fail_first_answers_500_then_serves(client: FlaskClient) -> None:
    rec = new_call(client, fail_first=2)["recording_sid"]
    codes = [client.get(api(f"/Recordings/{rec}.mp3"), headers=BASIC).status_code for _ in range(3)]
    assert codes == [500, 500, 200]


def test_garbage_keeps_the_length_but_is_not_audio(client: FlaskClient) -> None:
    created = new_call(client, garbage=True, size=4096)
    response = client.get(api(f"/Recordings/{created['recording_sid']}.mp3"), headers=BASIC)
    assert response.status_code == 200 and len(response.data) == 4096
    assert response.data[:3] not in (b"ID3", b"\xff\xfb\x90") and response.data[:4] != b"RIFF"
    assert hashlib.sha256(response.data).hexdigest() != created["recordings"][0]["mp3"]["sha256"]


def test_redirect_to_answers_302_with_placeholders_filled(client: FlaskClient) -> None:
    rec = new_call(client, redirect_to="/_sim/media/{sid}.{fmt}")["recording_sid"]
    response = client.get(api(f"/Recordings/{rec}.mp3"), headers=BASIC)
    assert response.status_code == 302 and response.location == f"/_sim/media/{rec}.mp3"


def test_delete_answers_204_then_the_recording_is_gone(client: FlaskClient) -> None:
    created = new_call(client)
    rec = created["recording_sid"]
    assert client.delete(api(f"/Recordings/{rec}.json"), headers=BASIC).status_code == 204
    for path in (f"/Recordings/{rec}.json", f"/Recordings/{rec}.mp3"):
        assert client.get(api(path), headers=BASIC).status_code == 404
    listing = client.get(api("/Recordings.json"), headers=BASIC, query_string={"CallSid": created["call_sid"]}).json
    assert listing["recordings"] == []
    assert client.delete(api(f"/Recordings/{rec}.json"), headers=BASIC).status_code == 404


def test_recording_list_pages_newest_first_by_token(client: FlaskClient) -> None:
    created = new_call(client, recordings=5)
    query = {"CallSid": created["call_sid"], "PageSize": "2"}
    page = client.get(api("/Recordings.json"), headers=BASIC, query_string=query).json
    assert page["first_page_uri"] == page["uri"]
    seen, pages = [], []
    while True:
        pages.append(page)
        seen += [rec["sid"] for rec in page["recordings"]]
        assert page["page_size"] == 2 and page["start"] == 2 * page["page"]
        if page["next_page_uri"] is None:
            break
        assert f"CallSid={created['call_sid']}" in page["next_page_uri"]
        page = client.get(page["next_page_uri"], headers=BASIC).json
    assert seen == created["recording_sids"][::-1]  # newest first
    assert [len(p["recordings"]) for p in pages] == [2, 2, 1]
    back = client.get(pages[2]["previous_page_uri"], headers=BASIC).json
    assert back["recordings"] == pages[1]["recordings"] and back["page"] == 1


def test_recording_list_filters_like_twilio(client: FlaskClient) -> None:
    calls = [new_call(client, child=True, date_created=f"2024-01-0{day}T10:00:00Z") for day in (1, 2, 3)]

    def sids(**query: str) -> list[str]:
        body = client.get(api("/Recordings.json"), headers=BASIC, query_string=query).json
        return [rec["sid"] for rec in body["recordings"]]

    # The twilio package sends date_created_after as "DateCreated>" (ISO date-time).
    assert sids(**{"DateCreated>": "2024-01-02T00:00:00Z"}) == [calls[2]["recording_sid"], calls[1]["recording_sid"]]
    assert sids(**{"DateCreated<": "2024-01-01"}) == [calls[0]["recording_sid"]]
    assert sids(DateCreated="2024-01-02") == [calls[1]["recording_sid"]]
    assert sids(CallSid=calls[0]["call_sid"]) == [calls[0]["recording_sid"]]
    assert sids(CallSid=calls[0]["child_call_sid"]) == []  # Twilio files under the parent
    child_list = client.get(api(f"/Calls/{calls[0]['child_call_sid']}/Recordings.json"), headers=BASIC).json
    assert child_list["recordings"] == []
    bad = client.get(api("/Recordings.json"), headers=BASIC, query_string={"PageSize": "x"})
    assert bad.status_code == 400 and bad.json["status"] == 400


def test_stats_count_every_media_get_and_full_bodies(client: FlaskClient) -> None:
    rec = new_call(client, fail_first=1, truncate_at=100)["recording_sid"]
    # The test client streams lazily: reading .data is what "sends" the body.
    failed, truncated = (client.get(api(f"/Recordings/{rec}.mp3"), headers=BASIC) for _ in range(2))
    assert failed.status_code == 500 and len(truncated.data) == 100
    client.patch(f"/_sim/recordings/{rec}", json={"truncate_at": None})
    assert len(client.get(api(f"/Recordings/{rec}"), headers=BASIC).data) == 65_536
    stats = client.get("/_sim/stats").json
    assert stats["media_gets"] == {rec: {"mp3": 2, "wav": 1}}
    assert stats["media_gets_total"] == 3
    assert stats["media_complete"] == {rec: {"mp3": 0, "wav": 1}}
    assert stats["by_path_kind"] == {"media": 3} and stats["requests_total"] == 3
    assert client.post("/_sim/reset", json={"stats_only": True}).status_code == 200
    assert client.get("/_sim/stats").json["requests_total"] == 0
    assert client.get(api(f"/Recordings/{rec}.json"), headers=BASIC).status_code == 200
    client.post("/_sim/reset")
    assert client.get(api(f"/Recordings/{rec}.json"), headers=BASIC).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"sizes": 1},
        {"size": "big"},
        {"size": 10},
        {"ready_after": -1},
        {"garbage": 1},
        {"child": "yes"},
        {"redirect_to": 5},
        {"date_created": "soon"},
    ],
)
def test_control_rejects_bad_call_bodies(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/_sim/calls", json=body)
    assert response.status_code == 400 and response.json["error"]


def test_control_patch_rejects_bad_knobs_without_changing_anything(client: FlaskClient) -> None:
    rec = new_call(client)["recording_sid"]
    bad = client.patch(f"/_sim/recordings/{rec}", json={"ready": "yes", "fail_first": 3})
    assert bad.status_code == 400
    assert client.get(f"/_sim/recordings/{rec}").json["knobs"]["fail_first"] == 0
    assert client.patch("/_sim/recordings/RE" + "0" * 32, json={}).status_code == 404


# --- audio generators ---------------------------------------------------------------


def test_audio_streams_500_mib_in_bounded_chunks() -> None:
    size = 500 * 2**20
    for fmt in ("mp3", "wav"):
        lengths = [len(chunk) for chunk in audio.media_chunks(fmt, size, "RE-big")]
        assert sum(lengths) == size and max(lengths) <= 65_536


def test_audio_is_deterministic_per_seed() -> None:
    first = audio.media_sha256("mp3", 9000, "a")
    audio._mp3_pieces.cache_clear()  # encoded again by LAME, not read back from the cache
    assert audio.media_sha256("mp3", 9000, "a") == first
    assert audio.media_sha256("mp3", 9000, "a") != audio.media_sha256("mp3", 9000, "b")
    assert audio.media_sha256("wav", 9000, "a") != audio.media_sha256("wav", 9000, "b")


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
@pytest.mark.parametrize("channels", [1, 2])
def test_audio_differs_per_seed_from_the_smallest_size(fmt: str, channels: int) -> None:
    heads = {b"".join(audio.media_chunks(fmt, 1024, f"RE{n:032x}", channels)) for n in range(8)}
    assert len(heads) == 8


def windows_talking(samples: array.array, rate: int) -> list[bool]:
    """Per 50 ms window: is its RMS at least -40 dBFS?"""
    size = rate // 20
    return [
        (sum(x * x for x in samples[i : i + size]) / size) ** 0.5 >= 328 for i in range(0, len(samples) - size, size)
    ]


def zero_crossings_per_second(samples: array.array, rate: int) -> float:
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    return crossings * rate / len(samples)


def test_wav_call_takes_turns_agent_lower_than_customer() -> None:
    data = b"".join(audio.media_chunks("wav", 44 + 27 * audio.BYTES_PER_SECOND, "RE-turns", 2))  # three blocks
    with wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
        frames = array.array("h", wav.readframes(wav.getnframes()))
    agent, customer = frames[0::2], frames[1::2]
    agent_talks, customer_talks = windows_talking(agent, rate), windows_talking(customer, rate)
    windows = len(agent_talks)
    assert 0.15 * windows < sum(agent_talks) < 0.6 * windows
    assert 0.15 * windows < sum(customer_talks) < 0.6 * windows
    assert not any(a and c for a, c in zip(agent_talks, customer_talks, strict=True))  # one speaks at a time
    assert sum(not a and not c for a, c in zip(agent_talks, customer_talks, strict=True)) > 0.15 * windows
    turns = sum(1 for a, b in zip(agent_talks, agent_talks[1:], strict=False) if a and not b)
    assert turns >= 6  # bursts with pauses between, not one long tone

    def voiced(lane: array.array, talks: list[bool]) -> array.array:
        size = rate // 20
        return array.array("h", (x for i, t in enumerate(talks) if t for x in lane[i * size : (i + 1) * size]))

    assert zero_crossings_per_second(voiced(agent, agent_talks), rate) < zero_crossings_per_second(
        voiced(customer, customer_talks), rate
    )


@pytest.mark.parametrize("channels", [1, 2])
def test_mp3_media_decodes_to_audible_speech_with_clean_joins(channels: int) -> None:
    seconds = 2 * audio.BLOCK_SECONDS + 2
    data = b"".join(audio.media_chunks("mp3", seconds * audio.BYTES_PER_SECOND, "RE-joins", channels))
    decoded = miniaudio.mp3_read_s16(data)
    assert (decoded.nchannels, decoded.sample_rate) == (channels, 16_000)
    whole_frames = len(data) // 576
    assert len(decoded.samples) == whole_frames * 576 * channels
    assert max(abs(x) for x in decoded.samples) > 8000
    rate = decoded.sample_rate
    for join in (audio.BLOCK_SECONDS, 2 * audio.BLOCK_SECONDS):  # a block ends in a pause: no click where it repeats
        around = decoded.samples[(join * rate - rate // 20) * channels : (join * rate + rate // 20) * channels]
        assert max(abs(x) for x in around) < 300


# --- real server as a subprocess ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_simulator(log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``python -m simulator serve`` until the block ends; yield (url, process)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "simulator",
        "serve",
        "--port",
        str(port),
        "--account-sid",
        ACCOUNT_SID,
        "--auth-token",
        AUTH_TOKEN,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while f"simulator listening url={url}" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_simulator(tmp_path_factory.mktemp("sim") / "sim.log") as (url, _):
        yield url


def sim_call(sim_url: str, **body: Any) -> dict[str, Any]:
    response = requests.post(f"{sim_url}/_sim/calls", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def twilio_client(sim_url: str) -> Client:
    """Return a real twilio Client whose API domain points at the simulator."""
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = sim_url  # Domain.absolute_url() joins every request path to this
    return client


def test_twilio_client_lists_recordings_across_pages(sim_url: str) -> None:
    created = sim_call(sim_url, recordings=5, child=True)
    before = requests.get(f"{sim_url}/_sim/stats", timeout=5).json()["by_path_kind"]
    client = twilio_client(sim_url)
    listed = client.recordings.list(call_sid=created["call_sid"], page_size=2)
    assert [rec.sid for rec in listed] == created["recording_sids"][::-1]
    assert all(rec.status == "completed" and rec.duration == "4" for rec in listed)
    after = requests.get(f"{sim_url}/_sim/stats", timeout=5).json()["by_path_kind"]
    assert after["recording_list"] - before.get("recording_list", 0) == 3  # 2 + 2 + 1
    by_call = client.calls(created["call_sid"]).recordings.list(page_size=4)
    assert [rec.sid for rec in by_call] == created["recording_sids"][::-1]
    assert client.recordings.list(call_sid=created["child_call_sid"]) == []


def test_twilio_client_fetches_child_call_and_recording(sim_url: str) -> None:
    created = sim_call(sim_url, child=True)
    client = twilio_client(sim_url)
    child = client.calls(created["child_call_sid"]).fetch()
    assert child.parent_call_sid == created["call_sid"]
    assert client.calls(created["call_sid"]).fetch().parent_call_sid is None
    recording = client.recordings(created["recording_sid"]).fetch()
    assert recording.call_sid == created["call_sid"] and recording.date_created.year >= 2024
    media = requests.get(recording.media_url + ".mp3", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert hashlib.sha256(media.content).hexdigest() == created["recordings"][0]["mp3"]["sha256"]
    assert recording.delete() is True
    with pytest.raises(TwilioRestException) as error:
        client.recordings(created["recording_sid"]).fetch()
    assert error.value.status == 404 and error.value.code == 20404


def test_concurrent_media_gets_consume_ready_after_exactly(sim_url: str) -> None:
    rec = sim_call(sim_url, ready_after=5, size=200_000)["recording_sid"]
    url = f"{sim_url}{api(f'/Recordings/{rec}.mp3')}"

    def fetch(_: int) -> tuple[int, int]:
        response = requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
        return response.status_code, len(response.content)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(fetch, range(20)))
    assert sorted(code for code, _ in results) == [200] * 15 + [404] * 5
    assert all(size == 200_000 for code, size in results if code == 200)
    stats = requests.get(f"{sim_url}/_sim/stats", timeout=5).json()
    assert stats["media_gets"][rec]["mp3"] == 20
    assert stats["media_complete"][rec]["mp3"] == 15


def test_truncate_at_closes_the_connection_mid_body(sim_url: str) -> None:
    rec = sim_call(sim_url, size=100_000, truncate_at=1000)["recording_sid"]
    url = f"{sim_url}{api(f'/Recordings/{rec}.mp3')}"
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="1000 bytes read"):
        requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)


def test_hang_ms_sends_headers_then_stalls_the_body(sim_url: str) -> None:
    rec = sim_call(sim_url, hang_ms=1000)["recording_sid"]
    url = f"{sim_url}{api(f'/Recordings/{rec}.wav')}"
    response = requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=0.3, stream=True)
    assert response.status_code == 200 and response.headers["Content-Length"] == "65536"
    with pytest.raises(requests.exceptions.ConnectionError, match="timed out"):
        response.content  # noqa: B018 - reading the body is the point


def test_throughput_paces_the_download(sim_url: str) -> None:
    rec = sim_call(sim_url, size=30_000, throughput=100_000)["recording_sid"]
    started = time.monotonic()
    response = requests.get(f"{sim_url}{api(f'/Recordings/{rec}.mp3')}", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert len(response.content) == 30_000 and time.monotonic() - started >= 0.28


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for Recording Cache that validates each webhook's signature."""
    received: list[dict[str, Any]] = []
    app = Flask("receiver")
    validator = RequestValidator(AUTH_TOKEN)

    @app.post("/twilio/<kind>")
    def hook(kind: str) -> tuple[str, int]:
        signature = request.headers.get("X-Twilio-Signature", "")
        received.append(
            {
                "kind": kind,
                "form": request.form.to_dict(),
                "valid": validator.validate(request.url, request.form, signature),
            }
        )
        return "", 204

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_place_call_sends_callbacks_that_twilio_validator_accepts(
    sim_url: str, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    service_url, received = receiver
    result = place_call(sim_url, service_url, ACCOUNT_SID, AUTH_TOKEN, child=True, size=20_000)
    assert result["callback_statuses"] == [204] * 10
    assert all(hook["valid"] for hook in received)
    parent, child = result["call_sid"], result["child_call_sid"]
    order = [
        (h["kind"], h["form"].get("RecordingStatus") or (h["form"]["CallSid"], h["form"]["CallStatus"]))
        for h in received
    ]
    assert order == [
        *(("call-status", (parent, status)) for status in ("initiated", "ringing", "in-progress")),
        *(("call-status", (child, status)) for status in ("initiated", "ringing", "in-progress")),
        ("recording-status", "in-progress"),
        ("call-status", (child, "completed")),
        ("call-status", (parent, "completed")),
        ("recording-status", "completed"),
    ]
    child_events = [h["form"] for h in received if h["form"].get("CallSid") == child and h["kind"] == "call-status"]
    assert [int(form["SequenceNumber"]) for form in child_events] == [0, 1, 2, 3]
    assert all(form["ParentCallSid"] == parent and form["AccountSid"] == ACCOUNT_SID for form in child_events)
    assert "CallDuration" in child_events[-1] and "CallDuration" not in child_events[0]  # the length when known
    done = received[-1]["form"]
    assert done["RecordingTrack"] == "both" and done["RecordingChannels"] == "2"
    assert done["CallSid"] == result["call_sid"] and done["RecordingDuration"] == "1"
    assert done["RecordingUrl"] == f"{sim_url}{api('/Recordings/' + result['recording_sid'])}"
    media = requests.get(done["RecordingUrl"] + ".mp3", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert hashlib.sha256(media.content).hexdigest() == result["expected"]["sha256"]
    tampered = {**done, "RecordingSid": "RE" + "0" * 32}
    signature = result["callbacks"][-1]["url"]
    assert not RequestValidator(AUTH_TOKEN).validate(signature, tampered, "forged")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args], cwd=ROOT, capture_output=True, text=True, timeout=20
    )


def test_cli_call_prints_a_one_line_summary(sim_url: str, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    service_url, received = receiver
    done = run_cli(
        "call",
        "--sim",
        sim_url,
        "--service",
        service_url,
        "--size",
        "4096",
        "--account-sid",
        ACCOUNT_SID,
        "--auth-token",
        AUTH_TOKEN,
        "--knob",
        "ready_after=1",
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("call_sid=CA") and "recording-status:completed=204" in line
    assert len(received) == 6 and all(hook["valid"] for hook in received)  # 4 call-status, 2 recording-status


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "http"),
        ("serve", "--port", "70000"),
        ("call", "--sim", "http://127.0.0.1:9"),
        ("serve", "--auth-token", "t"),
        ("call", "--service", "http://127.0.0.1:9", "--knob", "speed=3"),
    ],
)
def test_cli_reports_bad_arguments_in_one_line(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "SIM_ACCOUNT_SID",
        "SIM_AUTH_TOKEN",
        "SIMULATOR_PORT",
        "SIMULATOR_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(list(args))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and error.startswith("simulator")
    assert ": error: " in error


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "sim.log"
    with running_simulator(log_path) as (url, process):
        assert requests.get(f"{url}/_sim/health", timeout=5).json()["ok"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    assert "simulator stopped" in log_path.read_text()
    assert "Traceback" not in log_path.read_text()


def test_above_its_concurrency_limit_the_account_gets_429_20429(client: FlaskClient) -> None:
    rec = new_call(client, size=200_000)["recording_sid"]
    assert client.post("/_sim/limits", json={"max_concurrent": 1, "retry_after": 2}).status_code == 200
    held = client.get(api(f"/Recordings/{rec}.mp3"), headers=BASIC, buffered=False)  # a download in flight
    refused = client.get(api(f"/Recordings/{rec}.json"), headers=BASIC)
    assert refused.status_code == 429 and refused.json["code"] == 20429 and refused.headers["Retry-After"] == "2"
    held.close()  # its body sent: out of flight
    assert client.get(api(f"/Recordings/{rec}.json"), headers=BASIC).status_code == 200
    concurrency = client.get("/_sim/stats").json["concurrency"]
    assert (concurrency["limit"], concurrency["in_flight_max"], concurrency["over_limit"]) == (1, 1, 1)
    assert client.post("/_sim/limits", json={"max_concurrent": 0}).status_code == 400


def test_date_filters_work_in_whole_gmt_days_as_twilio_documents(client: FlaskClient) -> None:
    morning = new_call(client, date_created="2026-03-01T08:00:00Z")["recording_sid"]
    evening = new_call(client, date_created="2026-03-01T20:00:00Z")["recording_sid"]
    new_call(client, date_created="2026-03-02T01:00:00Z")
    listed = client.get(api("/Recordings.json?DateCreated>=2026-03-01T12:00:00Z&DateCreated<=2026-03-01T13:00:00Z"),
                        headers=BASIC).json["recordings"]  # fmt: skip
    assert {rec["sid"] for rec in listed} == {morning, evening}  # the whole day, not the hour


@pytest.mark.parametrize(
    ("header", "first", "last"), [("bytes=0-99", 0, 99), ("bytes=1000-", 1000, 9999), ("bytes=-500", 9500, 9999)]
)
def test_media_answers_a_range_as_a_cdn_does(client: FlaskClient, header, first, last) -> None:
    rec = new_call(client, size=10_000)["recording_sid"]
    whole = client.get(f"/_sim/media/{rec}.mp3").data
    part = client.get(api(f"/Recordings/{rec}.mp3"), headers={**BASIC, "Range": header})
    assert part.status_code == 206 and part.headers["Content-Range"] == f"bytes {first}-{last}/10000"
    assert part.data == whole[first : last + 1]
    assert client.get(api(f"/Recordings/{rec}.mp3"), headers={**BASIC, "Range": "bytes=20000-"}).status_code == 416
    head = client.head(api(f"/Recordings/{rec}.mp3"), headers=BASIC)
    assert head.status_code == 200 and head.headers["Content-Length"] == "10000" and head.data == b""
