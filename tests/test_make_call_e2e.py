"""`make call` (python -m stack.call): one option per kind of recording, against a running stack."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from stack.ports import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.twilio_kinds]


def make_call(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stack.call", *args], env=stack.env(), capture_output=True, text=True, timeout=60
    )


def _fields(out: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))


def test_a_conference_call_prints_its_sids_and_where_to_hear_it(stack):
    done = make_call(stack, "--conference", "--size", "4096")
    assert done.returncode == 0, done.stderr
    fields, next_step = _fields(done.stdout), done.stdout.splitlines()[1]
    assert fields["conference_sid"].startswith("CF") and set(fields["callbacks"].split(",")) == {"204"}
    url = next_step.split(" play ", 1)[1]
    assert f"/recordings/{fields['conference_sid']}.mp3?" in url

    def played():
        return requests.get(url, timeout=10).status_code == 200

    wait_for(played, 30, "the conference's recording")


def test_an_absent_recording_plays_404(stack):
    done = make_call(stack, "--absent", "--size", "4096")
    assert done.returncode == 0, done.stderr
    url = done.stdout.splitlines()[1].split(" play ", 1)[1]
    assert requests.get(url, timeout=10).json()["status"] == "absent"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--encrypted"], "RECORDING_FORMAT=wav"),
        (["--child", "--conference"], "not allowed with"),
        (["--size", "12"], "expected"),
    ],
)
def test_an_option_that_cannot_work_is_one_clear_line(stack, args, message):
    done = make_call(stack, *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_call_in_a_new_subaccount_is_accepted_and_plays(stack):
    done = make_call(stack, "--subaccount", "--size", "4096")
    assert done.returncode == 0, done.stderr
    fields = _fields(done.stdout)
    assert fields["account_sid"] != stack.account_sid and set(fields["callbacks"].split(",")) == {"204"}
    url = done.stdout.splitlines()[1].split(" play ", 1)[1]
    wait_for(lambda: requests.get(url, timeout=10).status_code == 200, 30, "the subaccount's recording")
