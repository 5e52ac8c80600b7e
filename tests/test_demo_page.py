"""The demo blueprint without a browser: its scripts, and the calls each recording lists."""

from __future__ import annotations

import json
from pathlib import Path

import fakeredis
import pytest

from web import create_app, demo
from worker import calls, sidecar, storage

from .support import make_settings

REPO = Path(__file__).resolve().parent.parent
RE1 = "RE" + "1" * 32
PARENT = "CA" + "a" * 32
CHILD = "CA" + "b" * 32
MP3 = b"\xff\xfb\x90\x00" + bytes(412)


@pytest.fixture
def demo_settings(tmp_path):
    return make_settings(tmp_path, TWILIO_ACCOUNT_SID="", TWILIO_AUTH_TOKEN="")


@pytest.fixture
def client(demo_settings):
    app = create_app(demo_settings, redis=fakeredis.FakeRedis())
    return app.test_client()


def test_demo_serves_the_wavesurfer_pinned_in_package_json(client):
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["wavesurfer.js"]
    installed = json.loads((demo.WAVESURFER_DIST.parent / "package.json").read_text())["version"]
    assert installed == pinned, "node_modules is not what package-lock.json pins: run make install (npm ci)"
    with client.get("/demo/vendor/wavesurfer.js") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"  # an ES module needs a JavaScript type
        assert response.data == (demo.WAVESURFER_DIST / demo.WAVESURFER_MODULE).read_bytes()


def test_demo_without_wavesurfer_installed_answers_404_and_the_page_still_loads(client, monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "WAVESURFER_DIST", tmp_path / "absent")
    assert client.get("/demo/vendor/wavesurfer.js").status_code == 404
    page = client.get("/")
    assert page.status_code == 200
    with client.get("/demo/static/demo.js") as script:
        assert script.status_code == 200 and script.mimetype == "text/javascript"


def test_recordings_json_lists_every_call_that_reaches_a_recording(client, demo_settings):
    root = demo_settings.recordings_dir
    storage.write_media(root, RE1, "mp3", [MP3], len(MP3))
    sidecar.write(root, sidecar.Sidecar(recording_sid=RE1, format="mp3", bytes=len(MP3), sha256="", call_sid=PARENT))
    calls.link_call_and_legs(demo_settings, PARENT, RE1, "mp3")
    calls.record_leg(demo_settings, CHILD, PARENT, "mp3")  # the <Dial>'s child leg, from its call-status webhook

    listing = client.get(f"/demo/recordings.json?sid={CHILD}").get_json()["recordings"]
    assert [(item["sid"], item["recording_sid"]) for item in listing] == [(CHILD, RE1), (RE1, RE1)]
    assert all(item["calls"] == [PARENT, CHILD] for item in listing)


def test_recordings_json_ignores_sids_that_are_not_playable(client):
    listing = client.get("/demo/recordings.json?sid=../etc/passwd&sid=AC" + "1" * 32).get_json()
    assert listing == {"recordings": []}
