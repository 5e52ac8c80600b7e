"""Row 15: the bytes a player fetches to draw a 10-minute call and play its first 5 seconds.

The demo page (wavesurfer.js drawing from the worker's peaks, ``<audio
preload="none">``) in headless Chromium: load, wait for the waveform, play
until 5 s, pause. The figure is what nginx sent for the recording's media
and peaks (``body_bytes_sent`` in its access log, so a transfer Chromium cut
short counts what was sent); the anchor is the whole file, which a player
without peaks downloads to draw the waveform before it can show it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import requests

from bench.context import Context
from bench.report import Check, RowResult
from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from worker import storage, waveforms

TEN_MINUTES_BYTES = 600 * 16_000  # the simulator's MP3: 128 kb/s
PLAYED_SECONDS = 5
TARGET = 0.05
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]


def _sent(stack: Stack, sid: str) -> dict[str, int]:
    """Bytes nginx sent for the recording's media and for its peaks, from its access log."""
    sent = {"media": 0, "peaks": 0}
    for line in (stack.base / "nginx.log").read_text(errors="replace").splitlines():
        if not line.startswith("{") or sid not in line:
            continue
        entry = json.loads(line)
        if entry.get("path", "").endswith(".peaks.json"):
            sent["peaks"] += entry["bytes"]
        elif entry.get("path", "").endswith(".mp3"):
            sent["media"] += entry["bytes"]
    return sent


def row_player(ctx: Context, result: RowResult) -> None:
    """Row 15: peaks + the first 5 s against the whole file."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ctx.stop_main()
    with Stack(Path(ctx.base) / "player", demo=True) as stack:
        stack.start_all(workers=1, concurrency=2)
        call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=TEN_MINUTES_BYTES)
        sid = call["recording_sid"]
        wait_for(lambda: waveforms.is_ready(stack.recordings, sid), 120, f"peaks of {sid}")
        size = storage.media_path(stack.recordings, sid, "mp3").stat().st_size
        before = _sent(stack, sid)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(stack.http_url + "/", wait_until="load")
                page.wait_for_selector(f"tr[data-recording='{sid}'][data-waveform='drawn']", timeout=60_000)
                page.evaluate("sid => document.querySelector(`audio[data-sid='${sid}']`).play()", sid)
                page.wait_for_function(
                    f"sid => document.querySelector(`audio[data-sid='${{sid}}']`).currentTime >= {PLAYED_SECONDS}",
                    arg=sid,
                    timeout=60_000,
                )
                page.evaluate("sid => document.querySelector(`audio[data-sid='${sid}']`).pause()", sid)
                page.wait_for_timeout(1500)  # what Chromium still had in flight arrives or is cut
            finally:
                browser.close()
        time.sleep(2.5)  # nginx's access log is buffered for up to 2 s
        after = _sent(stack, sid)
        requests.get(stack.http_url + "/healthz", timeout=5)
    fetched = {kind: after[kind] - before[kind] for kind in after}
    total = sum(fetched.values())
    result.checks.append(
        Check(
            f"bytes to draw a 10-minute call and play its first {PLAYED_SECONDS} s (media + peaks)",
            f"{total / 1024:,.0f} KiB",
            f"{size / 1024:,.0f} KiB (the whole file: a player without peaks)",
            total / size,
            f"< {TARGET:.0%}",
            total < TARGET * size,
        )
    )
    result.checks.append(
        Check(
            "bytes to draw the waveform alone (the peaks, before any audio byte)",
            f"{fetched['peaks'] / 1024:,.1f} KiB",
            f"{size / 1024:,.0f} KiB (the whole file)",
            fetched["peaks"] / size,
            "info",
            None,
        )
    )
    result.details = {"recording_bytes": size, **{f"{k}_bytes": v for k, v in fetched.items()}}
    result.notes.append(
        f"Headless Chromium on the demo page: waveform drawn from the peaks ({fetched['peaks']:,} bytes sent, "
        f"gzip), then play to {PLAYED_SECONDS} s and pause; media {fetched['media']:,} bytes sent by nginx "
        "(what the page read ahead of the playhead is counted). The page feeds the audio element itself (Media "
        "Source Extensions), Range by Range a few seconds ahead of the playhead: handed the file, Chromium's "
        "media buffer reads at least 2 MiB ahead and, from a server this close, most of a 9.6 MB file."
    )
