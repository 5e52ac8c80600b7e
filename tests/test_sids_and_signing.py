"""SID validation and nginx-compatible playback signatures."""

from __future__ import annotations

import pytest

from worker import signing
from worker.errors import InvalidSid
from worker.sids import require_format, require_playable_sid, require_sid

GOOD_RE = "RE" + "0123456789abcdef" * 2
GOOD_CA = "CA" + "fedcba9876543210" * 2

BAD_SIDS = [
    "",
    "RE",
    "RE" + "0" * 31,
    "RE" + "0" * 33,
    "RE" + "G" * 32,
    "re" + "0" * 32,
    "RE" + "A" * 32,  # Twilio SIDs are lowercase hex
    "../" + "0" * 32,
    "RE" + "0" * 30 + "/.",
    "RE" + "0" * 31 + "\x00",
    "ＲＥ" + "0" * 32,  # full-width look-alikes
    "AC" + "0" * 32,
    None,
    123,
]


@pytest.mark.parametrize("value", BAD_SIDS)
def test_playable_sid_rejects_malformed_values(value):
    with pytest.raises(InvalidSid):
        require_playable_sid(value)


@pytest.mark.parametrize("value", [GOOD_RE, GOOD_CA])
def test_playable_sid_accepts_recording_and_call_sids(value):
    assert require_playable_sid(value) == value


def test_require_sid_checks_the_type():
    assert require_sid(GOOD_RE, "RE") == GOOD_RE
    with pytest.raises(InvalidSid, match="RecordingSid"):
        require_sid(GOOD_CA, "RE", "RecordingSid")


@pytest.mark.parametrize("fmt", ["ogg", "MP3", "", "mp3/../x", None])
def test_format_rejects_unknown_formats(fmt):
    with pytest.raises(InvalidSid):
        require_format(fmt)


def test_signature_matches_nginx_secure_link_md5():
    # echo -n '2147483647/recordings/RE…mp3 key' | openssl md5 -binary | base64 | tr +/ -_ | tr -d =
    import base64
    import hashlib

    path = f"/recordings/{GOOD_RE}.mp3"
    expected = base64.urlsafe_b64encode(hashlib.md5(f"2147483647{path} key".encode()).digest()).rstrip(b"=").decode()
    assert signing.signature(path, 2147483647, "key") == expected


def test_signed_url_verifies_until_it_expires():
    url = signing.signed_url(GOOD_RE, "mp3", "k" * 16, ttl=60, now=1000)
    path, query = url.split("?")
    params = dict(part.split("=") for part in query.split("&"))
    assert params["expires"] == "1060"
    assert signing.verify(path, params["expires"], params["sig"], "k" * 16, now=1059)
    assert not signing.verify(path, params["expires"], params["sig"], "k" * 16, now=1061)
    assert not signing.verify(path, params["expires"], params["sig"], "x" * 16, now=1000)
    assert not signing.verify(path.replace("mp3", "wav"), params["expires"], params["sig"], "k" * 16, now=1000)
    assert not signing.verify(path, None, params["sig"], "k" * 16, now=1000)
    assert not signing.verify(path, "-5", params["sig"], "k" * 16, now=1000)


@pytest.mark.parametrize(
    ("expires", "sig"),
    [
        ("\u00b2", "x"),  # isdigit() but not int()
        ("\u0661\u0662", "x"),  # Arabic-Indic digits
        ("9" * 5000, "x"),  # past int()'s digit limit
        ("2147483647", "\xe9"),  # hmac.compare_digest refuses non-ASCII str
        ("2147483647", "\x00"),
    ],
)
def test_verify_refuses_odd_expires_and_sig_without_raising(expires, sig):
    assert not signing.verify(f"/recordings/{GOOD_RE}.mp3", expires, sig, "k" * 16, now=1000)
