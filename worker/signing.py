"""Signed, expiring playback URLs in the form nginx's ``secure_link`` checks.

nginx computes ``md5("$secure_link_expires$uri $key")``, base64url without
padding, and compares it with ``sig``; so a hit is authorised without Python.
The same function lets the web tier re-check a signature on the miss path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from .sids import require_format, require_playable_sid, require_sid

_EXPIRES = re.compile(r"[0-9]{1,12}")  # a Unix time in ASCII digits, short enough for int()


def playback_path(sid: str, fmt: str) -> str:
    """The URL path a recording is played from."""
    return f"/recordings/{require_playable_sid(sid)}.{require_format(fmt)}"


def peaks_path(recording_sid: str) -> str:
    """The URL path a recording's waveform peaks are fetched from."""
    return f"/recordings/{require_sid(recording_sid, 'RE')}.peaks.json"


def signed_peaks_url(recording_sid: str, key: str, ttl: int, now: float | None = None) -> str:
    """A relative URL of the recording's peaks, signed like its playback URL."""
    path = peaks_path(recording_sid)
    expires = int(now if now is not None else time.time()) + ttl
    return f"{path}?expires={expires}&sig={signature(path, expires, key)}"


def signature(path: str, expires: int, key: str) -> str:
    """The ``sig`` nginx expects for ``path`` valid until ``expires``."""
    digest = hashlib.md5(f"{expires}{path} {key}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_url(sid: str, fmt: str, key: str, ttl: int, now: float | None = None) -> str:
    """A relative playback URL valid for ``ttl`` seconds."""
    path = playback_path(sid, fmt)
    expires = int(now if now is not None else time.time()) + ttl
    return f"{path}?expires={expires}&sig={signature(path, expires, key)}"


def verify(path: str, expires: str | None, sig: str | None, key: str, now: float | None = None) -> bool:
    """True when ``sig`` signs ``path`` and ``expires`` is still in the future."""
    # hmac.compare_digest raises on non-ASCII text.
    if not expires or not sig or not _EXPIRES.fullmatch(expires) or not sig.isascii():
        return False
    if int(expires) < int(now if now is not None else time.time()):
        return False
    # nginx's secure_link decodes base64, so it also takes the "=" padding signature() leaves off.
    return hmac.compare_digest(signature(path, int(expires), key), sig.rstrip("="))
