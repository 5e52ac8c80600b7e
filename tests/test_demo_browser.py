"""The demo page in headless Chromium and Firefox ESR (Playwright), against the real stack in demo mode."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from simulator.audio import BYTES_PER_SECOND
from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from worker import storage

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

log = logging.getLogger(__name__)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # play() from the test is not a user gesture
    "--autoplay-policy=no-user-gesture-required",
]
# The second engine: Debian's firefox-esr, driven over WebDriver BiDi
# (Playwright's "moz-firefox" channel runs a stock Firefox, not its own build).
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
FIREFOX_PREFS = {
    "media.autoplay.default": 0,  # play() from the test is not a user gesture
    "media.autoplay.blocking_policy": 0,
}
# Where the screenshots of the demo page go, one per engine, for a person to look at.
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).resolve().parent.parent / "test-artifacts"))
# A long call (about 9 minutes at 16,000 bytes a second): far more than
# Chromium reads ahead after play, so a seek to 75 % needs a request of its own.
LONG_CALL_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("demo"), demo=True) as running:
        yield running.start_all(workers=1, concurrency=2)


def launch(playwright, engine: str):
    if engine == "chromium":
        if CHROMIUM is None:
            pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
        return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    if FIREFOX is None:
        pytest.skip("Debian's firefox-esr is not installed (apt-get install firefox-esr)")
    return playwright.firefox.launch(
        channel="moz-firefox", executable_path=FIREFOX, headless=True, firefox_user_prefs=FIREFOX_PREFS
    )


@pytest.fixture(params=["chromium", "firefox"])
def browser_page(request):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright, request.param)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def page_wait(page, predicate, timeout: float, what: str):
    """wait_for that lets Playwright deliver its events (time.sleep would not)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        page.wait_for_timeout(50)
    return value


def play(page, sid: str) -> None:
    page.evaluate(
        "sid => { const a = document.querySelector(`audio[data-sid='${sid}']`); a.currentTime = 0; return a.play(); }",
        sid,
    )


def is_media(url: str) -> bool:
    path = urlsplit(url).path
    return path.startswith("/recordings/") and path.endswith(".mp3")


def media_responses(page) -> list:
    """Responses to audio requests (``/recordings/….mp3``), not to the waveform's peaks."""
    responses: list = []
    page.on("response", lambda r: responses.append(r) if is_media(r.url) else None)
    return responses


def media_requests(page) -> list:
    requests_seen: list = []
    page.on("request", lambda r: requests_seen.append(r) if is_media(r.url) else None)
    return requests_seen


def cached_with_peaks(stack: Stack, sid: str, timeout: float = 60) -> dict:
    """Wait until the recording is cached and nginx serves its peaks; its demo JSON item."""
    wait_for(lambda: storage.is_cached(stack.recordings, sid, "mp3"), timeout, f"{sid} cached")

    def peaks_served() -> dict | None:
        listing = requests.get(f"{stack.http_url}/demo/recordings.json", params={"sid": sid}, timeout=5).json()
        item = next(i for i in listing["recordings"] if i["sid"] == sid)
        served = requests.get(stack.http_url + item["peaks_url"], timeout=5)
        return item if served.status_code == 200 else None

    return wait_for(peaks_served, timeout, f"peaks of {sid}", interval=0.2)


# The waveform's lanes as drawn: wavesurfer renders into an open shadow root,
# one div of canvases per channel (splitChannels) under `.canvases`.
LANES_JS = """row => {
  const host = row.querySelector('.waveform > div');
  const canvases = host && host.shadowRoot && host.shadowRoot.querySelector('.canvases');
  if (!canvases) return [];
  return [...canvases.children].map(lane => [...lane.querySelectorAll('canvas')].map(c => ({
    width: c.getBoundingClientRect().width, height: c.getBoundingClientRect().height, image: c.toDataURL()})));
}"""


def drawn_lanes(page, recording_sid: str) -> list:
    """Each lane's canvases, once every lane has a canvas of non-zero size."""
    row = page.wait_for_selector(f"tr[data-recording='{recording_sid}'][data-waveform='drawn']", timeout=30_000)

    def lanes():
        found = row.evaluate(LANES_JS)
        return found if found and all(c and all(x["width"] > 0 and x["height"] > 0 for x in c) for c in found) else None

    return page_wait(page, lanes, 10, "the waveform's canvases")


def clock(text: str) -> int:
    """Seconds of the page's "m:ss"."""
    minutes, _, secs = text.strip().partition(":")
    return int(minutes) * 60 + int(secs)


def test_demo_page_plays_from_nginx_and_downloads_once(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=256 * 1024)
    sid = call["recording_sid"]
    wait_for(lambda: storage.is_cached(stack.recordings, sid, "mp3"), 30, "cached")

    responses = media_responses(page)
    polls: list = []
    page.on("response", lambda r: polls.append(r) if "/demo/recordings.json" in r.url else None)
    page.goto(stack.http_url + "/")
    page.wait_for_selector(f"audio[data-sid='{sid}'][src]", state="attached")
    page_wait(page, lambda: len(polls) >= 3, 10, "the page polled its list three times")
    assert responses == [], "loading the page fetched recordings"

    play(page, sid)
    page_wait(page, lambda: any(r.status == 206 for r in responses), 15, "a 206 for the audio element")
    first = next(r for r in responses if r.status == 206)
    assert first.request.headers.get("range", "").startswith("bytes=")
    assert first.headers["content-type"] == "audio/mpeg"

    page.reload()
    page.wait_for_selector(f"audio[data-sid='{sid}'][src]", state="attached")
    play(page, sid)
    page_wait(page, lambda: sum(r.status == 206 for r in responses) >= 2, 15, "a second play")
    assert stack.media_gets(sid) == 1


def test_a_cached_recording_draws_its_waveform_before_any_audio_byte(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=256 * 1024)
    sid = call["recording_sid"]
    cached_with_peaks(stack, sid)

    media = media_requests(page)
    peaks: list = []
    page.on("response", lambda r: peaks.append(r) if urlsplit(r.url).path == f"/recordings/{sid}.peaks.json" else None)
    polls: list = []
    page.on("response", lambda r: polls.append(r) if "/demo/recordings.json" in r.url else None)
    page.goto(stack.http_url + "/")

    lanes = drawn_lanes(page, sid)
    page_wait(page, lambda: len(polls) >= 3, 10, "three more polls of the list")
    assert lanes, "no waveform drawn"
    assert [r.status for r in peaks] == [200], "the waveform comes from the peaks, fetched once"
    assert media == [], f"the page fetched audio before any play: {[r.url for r in media]}"
    audio = page.query_selector(f"audio[data-sid='{sid}']")
    assert audio.get_attribute("preload") == "none"
    assert audio.evaluate("a => a.readyState") == 0  # HAVE_NOTHING: not a byte of media


def test_a_click_at_three_quarters_plays_from_there_with_one_range_request(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=LONG_CALL_BYTES)
    sid = call["recording_sid"]
    size = cached_with_peaks(stack, sid)["bytes"]
    assert size == LONG_CALL_BYTES

    media = media_responses(page)
    page.goto(stack.http_url + "/")
    drawn_lanes(page, sid)
    box = page.query_selector(f"tr[data-recording='{sid}'] .waveform").bounding_box()
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
    assert media == [], "a click on the waveform only seeks; nothing is fetched before play"
    at, _, total = page.inner_text(f"tr[data-recording='{sid}'] .time").partition(" / ")
    assert clock(total) == round(size / BYTES_PER_SECOND)  # the peaks' duration, before any audio byte
    assert clock(at) == pytest.approx(0.75 * size / BYTES_PER_SECOND, abs=3)  # the lane is ~450 px: ~1.2 s a pixel
    page.click(f"tr[data-recording='{sid}'] .controls .toggle")

    def seek_response():
        for response in media:
            start = re.fullmatch(r"bytes=(\d+)-\d*", response.request.headers.get("range", ""))
            if start and int(start.group(1)) > 0:
                return response, int(start.group(1))
        return None

    response, start = page_wait(page, seek_response, 20, "a Range request past the start")
    log.info("seek: Range bytes=%d- is %.3f%% of %d bytes", start, 100 * start / size, size)
    # Tolerance: the click lands within a pixel of 75 % (the lane is ~600 px:
    # 0.2 % of the file); the simulator's MP3 is constant bitrate, so time maps
    # to bytes linearly; Chromium starts a request at its cache's 32 KiB block
    # below the byte FFmpeg seeks to, Firefox a little further below (0.4 %
    # seen). 1 % of the file (84 KB, 5 s of audio) covers these with room; a
    # seek that went wrong lands megabytes away.
    assert abs(start - 0.75 * size) <= 0.01 * size, f"Range starts at {start / size:.2%} of the file"
    assert response.status == 206
    assert response.headers["content-range"].startswith(f"bytes {start}-")
    assert response.headers["content-range"].endswith(f"/{size}")
    assert stack.media_gets(sid) == 1
    current = page.evaluate("sid => document.querySelector(`audio[data-sid='${sid}']`).currentTime", sid)
    assert current >= 0.74 * size / BYTES_PER_SECOND


def test_a_dual_channel_recording_shows_one_lane_per_party(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=1024 * 1024)
    sid = call["recording_sid"]
    item = cached_with_peaks(stack, sid)
    assert item["channels"] == 2

    page.goto(stack.http_url + "/")
    lanes = drawn_lanes(page, sid)
    assert len(lanes) == 2, "splitChannels: one lane per channel"
    assert lanes[0][0]["image"] != lanes[1][0]["image"], "the agent's and the customer's lanes look alike"
    row = page.query_selector(f"tr[data-recording='{sid}']")
    assert [lane.inner_text().split("\n")[0] for lane in row.query_selector_all(".lane")] == ["agent", "customer"]
    assert item["duration_s"] == pytest.approx(1024 * 1024 / BYTES_PER_SECOND, abs=0.5)
    assert clock(row.query_selector(".duration").inner_text()) == round(item["duration_s"])
    row.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"demo-page-{page.context.browser.browser_type.name}.png"
    page.screenshot(path=str(shot), full_page=True)
    log.info("demo page screenshot: %s", shot)


def place_from_page(page, kind: str) -> list[str]:
    """Press "Place a simulated call"; the SIDs its message names."""
    page.select_option("#kind", kind)
    page.click("#place-call")
    page.wait_for_selector("#message code")
    return [c.inner_text() for c in page.query_selector_all("#message code")]


def call_sids(named: list[str]) -> list[str]:
    return list(dict.fromkeys(sid for sid in named if sid.startswith("CA")))


def test_an_outbound_call_is_one_row_reached_by_both_call_sids(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    page.goto(stack.http_url + "/")
    named = place_from_page(page, "child")
    recording_sid = next(sid for sid in named if sid.startswith("RE"))
    row = page.wait_for_selector(f"tr[data-recording='{recording_sid}']")
    page.wait_for_selector(f"tr[data-recording='{recording_sid}'] audio[src]", state="attached", timeout=30_000)
    parent, child = call_sids(named)
    calls = [c.inner_text() for c in row.query_selector_all(".calls code")]
    assert parent in calls and child in calls, calls
    table = page.inner_text("#recordings")
    assert all(sid in table for sid in named), "the message names a SID the table does not show"
    rows_with_it = [tr for tr in page.query_selector_all("#recordings tr") if recording_sid in tr.inner_text()]
    assert len(rows_with_it) == 1, "one row per recording"
    assert row.get_attribute("data-sid") == child  # it plays by the child leg's CallSid
    assert storage.resolve_link(stack.recordings, child, "mp3") == recording_sid


def test_reloading_keeps_the_placed_calls_row(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    page.goto(stack.http_url + "/")
    named = place_from_page(page, "child")  # 1 MiB at 512 KiB/s: still downloading at the reload
    recording_sid = next(sid for sid in named if sid.startswith("RE"))
    page.reload()
    row = page.wait_for_selector(f"tr[data-recording='{recording_sid}']", timeout=5_000)
    assert storage.is_cached(stack.recordings, recording_sid, "mp3") is False, "reloaded too late to show it"
    calls = [c.inner_text() for c in row.query_selector_all(".calls code")]
    assert call_sids(named) == calls  # the parent call and the child leg, as the message said
    page.wait_for_selector(f"tr[data-recording='{recording_sid}'] audio[src]", state="attached", timeout=30_000)
    assert len([tr for tr in page.query_selector_all("#recordings tr") if recording_sid in tr.inner_text()]) == 1


def test_recording_still_downloading_becomes_playable_without_reload(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    responses = media_responses(page)
    page.goto(stack.http_url + "/")
    page.select_option("#kind", "child")
    page.click("#place-call")  # 1 MiB at 512 KiB/s: about two seconds of download
    row = page.wait_for_selector("#recordings tr[data-sid^='CA']")
    child_sid = row.get_attribute("data-sid")
    assert row.query_selector(".status").inner_text() in ("placed", "pending", "downloading", "unknown")
    assert row.query_selector("audio").get_attribute("src") is None
    page.wait_for_selector(f"audio[data-sid='{child_sid}'][src]", state="attached", timeout=30_000)
    assert row.query_selector(".status").inner_text() == "cached"
    play(page, child_sid)
    page_wait(page, lambda: any(r.status == 206 and child_sid in r.url for r in responses), 15, "206 for the child leg")
    recording_sid = storage.resolve_link(stack.recordings, child_sid, "mp3")
    assert stack.media_gets(recording_sid) == 1


def test_a_conference_is_placed_and_played_by_its_conference_sid(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    responses = media_responses(page)
    page.goto(stack.http_url + "/")
    page.select_option("#kind", "conference")
    page.click("#place-call")
    row = page.wait_for_selector("#recordings tr[data-sid^='CF']")
    conference = row.get_attribute("data-sid")
    page.wait_for_selector(f"audio[data-sid='{conference}'][src]", state="attached", timeout=30_000)
    assert row.query_selector(".channels").inner_text() == "1"  # a conference is recorded mono
    assert row.query_selector(".source").inner_text() == "StartConferenceRecordingAPI"
    recording_sid = row.get_attribute("data-recording")
    assert len(drawn_lanes(page, recording_sid)) == 1  # mono: one lane
    play(page, conference)
    page_wait(page, lambda: any(r.status == 206 and conference in r.url for r in responses), 15, "206, conference")


def test_an_absent_recording_shows_its_status_and_error_code(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    page.goto(stack.http_url + "/")
    page.select_option("#kind", "absent")
    page.click("#place-call")
    row = page.wait_for_selector("#recordings tr[data-sid^='RE'] .status-absent", timeout=15_000)
    assert row.inner_text() == "absent (16101)"
