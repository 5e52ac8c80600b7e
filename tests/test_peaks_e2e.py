"""Waveform peaks end to end: computed after the download, served by nginx alone, in the API, backfilled."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
import requests

from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from stack.procfile import ROOT
from worker import sidecar, signing, storage, waveforms

pytestmark = pytest.mark.e2e

SIZE = 160_000  # ten seconds of the simulator's 128 kb/s MP3


@pytest.fixture(scope="module")
def peaks_stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("peaks")) as running:
        yield running.start_all(workers=1, concurrency=2)


def peaks_url(stack: Stack, sid: str, ttl: int = 600) -> str:
    return stack.http_url + signing.signed_peaks_url(sid, stack.signing_key, ttl)


def cached_call(stack: Stack, **knobs) -> str:
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=SIZE, **knobs)
    sid = call["recording_sid"]
    wait_for(lambda: waveforms.is_ready(stack.recordings, sid), 30, f"peaks of {sid}")
    return sid


def api(stack: Stack, sid: str) -> dict:
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    return requests.get(f"{stack.http_url}/api/recordings/{sid}", headers=headers, timeout=5).json()


def test_peaks_follow_the_download_and_nginx_serves_them_gzipped_without_python(peaks_stack):
    stack = peaks_stack
    sid = cached_call(stack)
    facts = sidecar.read(stack.recordings, sid, "mp3")
    assert facts.peaks == "ready" and 9 < facts.duration_s < 11 and len(facts.talk_s) == facts.channels == 2
    stack.procs["web"].stop()  # nginx alone from here on
    try:
        reply = requests.get(peaks_url(stack, sid), headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
        raw = reply.raw.read()
        assert reply.status_code == 200 and reply.headers["Content-Encoding"] == "gzip"
        assert reply.headers["Content-Type"].startswith("application/json")
        waveform = json.loads(gzip.decompress(raw))
        assert {"version", "channels", "sample_rate", "samples_per_pixel", "bits", "length", "data"} <= set(waveform)
        assert waveform["channels"] == 2 and len(waveform["data"]) == 2 * 2 * waveform["length"]
        assert requests.get(peaks_url(stack, sid, ttl=-10), timeout=5).status_code == 403  # expired
        forged = peaks_url(stack, sid).replace("sig=", "sig=A")
        assert requests.get(forged, timeout=5).status_code == 403
    finally:
        stack.start_web()


def test_the_api_gives_peaks_url_duration_and_channels(peaks_stack):
    stack = peaks_stack
    sid = cached_call(stack)
    info = api(stack, sid)
    assert info["status"] == "cached" and info["channels"] == 2 and 9 < info["duration_s"] < 11
    assert len(info["talk_s"]) == len(info["silence_s"]) == 2
    assert requests.get(stack.http_url + info["peaks_url"], timeout=5).status_code == 200
    unknown = api(stack, "RE" + "e" * 32)
    assert unknown["peaks_url"].startswith(f"/recordings/{'RE' + 'e' * 32}.peaks.json?")  # ask before it exists


def test_missing_peaks_answer_202_and_are_computed_again(peaks_stack):
    stack = peaks_stack
    sid = cached_call(stack)
    waveforms.path(stack.recordings, sid).unlink()
    reply = requests.get(peaks_url(stack, sid), timeout=5)
    assert reply.status_code == 202 and reply.headers["Retry-After"] == "1"
    wait_for(lambda: requests.get(peaks_url(stack, sid), timeout=5).status_code == 200, 20, "peaks again")


def test_an_undecodable_recording_plays_and_its_peaks_say_why_not(peaks_stack):
    stack = peaks_stack
    sid = cached_call(stack)
    media = storage.media_path(stack.recordings, sid, "mp3")
    media.write_bytes(media.read_bytes()[:4] + b"\x00" * (SIZE - 4))  # a frame header, then nothing decodable
    waveforms.path(stack.recordings, sid).unlink()
    outcome = waveforms.make(stack.recordings, sid, "mp3")
    assert outcome.result == "unavailable"
    reply = requests.get(peaks_url(stack, sid), timeout=5)
    assert reply.status_code == 404 and "decode" in reply.json()["reason"]
    play = stack.http_url + signing.signed_url(sid, "mp3", stack.signing_key, 600)
    assert requests.get(play, headers={"Range": "bytes=0-99"}, timeout=5).status_code == 206


def test_a_backfill_computes_what_is_missing_and_is_rerun_safe(peaks_stack):
    stack = peaks_stack
    sid = cached_call(stack)
    waveforms.path(stack.recordings, sid).unlink()

    def backfill(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "worker", "peaks", *args],
            cwd=ROOT,
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = backfill()
    assert first.get("ready", 0) >= 1 and waveforms.is_ready(stack.recordings, sid)
    second = backfill()
    assert second.get("ready", 0) == 0 and second["already"] >= 1
