"""A volume an earlier version wrote flat plays through real nginx before, during and after its
migration into fan-out folders, which a real worker starts on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from stack.procfile import ROOT
from worker import layout, signing, storage

pytestmark = pytest.mark.e2e

BODY = b"\xff\xfb\x90\x64" + bytes(range(256)) * 400
RE_OLD, RE_MOVED = "RE" + "1" * 30 + "a1", "RE" + "2" * 30 + "b2"
CA_OLD, CA_DANGLING = "CA" + "3" * 30 + "c3", "CA" + "4" * 30 + "d4"


def signed(stack: Stack, sid: str) -> str:
    return stack.http_url + signing.signed_url(sid, "mp3", stack.signing_key, 600)


def flat_volume(root) -> None:
    """The top level as the version before fan-out left it, and one recording a migration moved
    before its call's link was rewritten (an interrupted migration)."""
    root.mkdir(parents=True, exist_ok=True)
    for sid in (RE_OLD, RE_MOVED):
        facts = {"recording_sid": sid, "format": "mp3", "bytes": len(BODY), "sha256": "0" * 64}
        (root / f"{sid}.mp3.json").write_text(json.dumps(facts))
    (root / f"{RE_OLD}.mp3").write_bytes(BODY)
    (root / "b2").mkdir()
    (root / "b2" / f"{RE_MOVED}.mp3").write_bytes(BODY)
    os.symlink(f"{RE_OLD}.mp3", root / f"{CA_OLD}.mp3")
    os.symlink(f"{RE_MOVED}.mp3", root / f"{CA_DANGLING}.mp3")  # names a recording now in its folder


def plays(stack: Stack, sid: str) -> bool:
    whole = requests.get(signed(stack, sid), timeout=5)
    part = requests.get(signed(stack, sid), headers={"Range": "bytes=1000-1999"}, timeout=5)
    return (whole.status_code, whole.content, part.status_code, part.content) == (200, BODY, 206, BODY[1000:2000])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("layout")) as running:
        flat_volume(running.recordings)
        running.start_redis()
        running.start_simulator()
        running.start_web()
        running.start_nginx()
        yield running


def test_a_flat_volume_plays_before_its_migration_and_from_its_folders_after(stack):
    root = stack.recordings
    assert plays(stack, RE_OLD) and plays(stack, CA_OLD)  # nginx falls back to the top level
    # A link that names a moved recording: nginx cannot follow it, the web tier redirects to the recording.
    answer = requests.get(signed(stack, CA_DANGLING), timeout=5, allow_redirects=False)
    assert answer.status_code == 302 and f"/recordings/{RE_MOVED}.mp3?" in answer.headers["Location"]
    assert plays(stack, CA_DANGLING)  # following it

    stack.start_worker(concurrency=1)  # its maintenance timer sends the migration at start
    wait_for(lambda: layout.is_fanned(root), 30, "the volume migrated")
    assert "layout.migrated" in stack.procs["worker"].log()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["a1", "b2", "c3", "d4"]
    assert os.readlink(root / "d4" / f"{CA_DANGLING}.mp3") == f"../b2/{RE_MOVED}.mp3"
    stack.procs["web"].stop()  # nginx alone: every file is found from its SID
    try:
        assert all(plays(stack, sid) for sid in (RE_OLD, RE_MOVED, CA_OLD, CA_DANGLING))
    finally:
        stack.start_web()


def test_a_new_recording_lands_in_its_folder_and_plays_by_its_call(stack):
    wait_for(lambda: layout.is_fanned(stack.recordings), 30, "the volume migrated")
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token, size=50_000)
    sid = call["recording_sid"]
    wait_for(lambda: storage.is_cached(stack.recordings, call["call_sid"], "mp3"), 30, "cached and linked")
    assert (stack.recordings / sid[-2:] / f"{sid}.mp3").stat().st_size == 50_000
    assert requests.get(signed(stack, call["call_sid"]), timeout=5).status_code == 200


def test_the_operator_command_is_rerun_safe(stack):
    wait_for(lambda: layout.is_fanned(stack.recordings), 30, "the volume migrated")
    command = [sys.executable, "-m", "worker", "migrate-layout"]
    done = subprocess.run(command, cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["complete"] is True and json.loads(done.stdout)["moved"] == 0
