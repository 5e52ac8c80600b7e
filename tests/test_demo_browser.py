"""The demo page in headless Chromium (Playwright), against the real stack in demo mode."""

from __future__ import annotations

import shutil
import time

import pytest

from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from worker import storage

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

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


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("demo"), demo=True) as running:
        yield running.start_all(workers=1, concurrency=2)


@pytest.fixture
def browser_page():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
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


def recording_responses(page) -> list:
    responses: list = []
    page.on("response", lambda r: responses.append(r) if "/recordings/" in r.url else None)
    return responses


def test_demo_page_plays_from_nginx_and_downloads_once(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=256 * 1024)
    sid = call["recording_sid"]
    wait_for(lambda: storage.is_cached(stack.recordings, sid, "mp3"), 30, "cached")

    responses = recording_responses(page)
    polls: list = []
    page.on("response", lambda r: polls.append(r) if "/demo/recordings.json" in r.url else None)
    page.goto(stack.http_url + "/")
    page.wait_for_selector(f"audio[data-sid='{sid}'][src]")
    page_wait(page, lambda: len(polls) >= 3, 10, "the page polled its list three times")
    assert responses == [], "loading the page fetched recordings"

    play(page, sid)
    page_wait(page, lambda: any(r.status == 206 for r in responses), 15, "a 206 for the audio element")
    first = next(r for r in responses if r.status == 206)
    assert first.request.headers.get("range", "").startswith("bytes=")
    assert first.headers["content-type"] == "audio/mpeg"

    page.reload()
    page.wait_for_selector(f"audio[data-sid='{sid}'][src]")
    play(page, sid)
    page_wait(page, lambda: sum(r.status == 206 for r in responses) >= 2, 15, "a second play")
    assert stack.media_gets(sid) == 1


def test_recording_still_downloading_becomes_playable_without_reload(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    responses = recording_responses(page)
    page.goto(stack.http_url + "/")
    page.select_option("#kind", "child")
    page.click("#place-call")  # 1 MiB at 512 KiB/s: about two seconds of download
    row = page.wait_for_selector("#recordings tr[data-sid^='CA']")
    child_sid = row.get_attribute("data-sid")
    assert row.query_selector(".status").inner_text() in ("pending", "downloading", "unknown")
    assert row.query_selector("audio").get_attribute("src") is None
    page.wait_for_selector(f"audio[data-sid='{child_sid}'][src]", timeout=30_000)
    assert row.query_selector(".status").inner_text() == "cached"
    play(page, child_sid)
    page_wait(page, lambda: any(r.status == 206 and child_sid in r.url for r in responses), 15, "206 for the child leg")
    recording_sid = storage.resolve_link(stack.recordings, child_sid, "mp3")
    assert stack.media_gets(recording_sid) == 1


def test_a_conference_is_placed_and_played_by_its_conference_sid(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    responses = recording_responses(page)
    page.goto(stack.http_url + "/")
    page.select_option("#kind", "conference")
    page.click("#place-call")
    row = page.wait_for_selector("#recordings tr[data-sid^='CF']")
    conference = row.get_attribute("data-sid")
    page.wait_for_selector(f"audio[data-sid='{conference}'][src]", timeout=30_000)
    assert row.query_selector(".channels").inner_text() == "1"  # a conference is recorded mono
    assert row.query_selector(".source").inner_text() == "StartConferenceRecordingAPI"
    play(page, conference)
    page_wait(page, lambda: any(r.status == 206 and conference in r.url for r in responses), 15, "206, conference")


def test_an_absent_recording_shows_its_status_and_error_code(demo_stack, browser_page):
    stack, page = demo_stack, browser_page
    page.goto(stack.http_url + "/")
    page.select_option("#kind", "absent")
    page.click("#place-call")
    row = page.wait_for_selector("#recordings tr[data-sid^='RE'] .status-absent", timeout=15_000)
    assert row.inner_text() == "absent (16101)"
