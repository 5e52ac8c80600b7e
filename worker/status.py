"""Short-lived per-recording state in Redis: queued, downloading, failed.

The volume says what is cached; Redis only adds what is in flight or went
wrong, so losing Redis loses no recording, only these hints. The keys are
spelled in ``worker.keys``.
"""

from __future__ import annotations

import json
import time

import redis

from . import keys


def set_state(r: redis.Redis, sid: str, fmt: str, status: str, **facts: object) -> None:
    """Remember the latest state of a recording (``failed``, ``not_found``, …)."""
    ttl = keys.NOT_FOUND_TTL_SECONDS if status == "not_found" else keys.STATE_TTL_SECONDS
    value = json.dumps({"status": status, "at": round(time.time(), 3), **facts})
    r.set(keys.state(sid, fmt), value, ex=ttl)


# Twilio's final recording statuses: the recording will never have media.
FINAL_STATUSES = ("absent", "failed")


def set_final(
    r: redis.Redis, sid: str, fmt: str, twilio_status: str, error_code: int | None, error: str | None = None
) -> None:
    """Remember that the recording is ``absent`` or ``failed`` for good (Twilio says so, or it
    cannot be decrypted): never fetched again unless asked (``POST /api/recordings/<sid>/fetch``)."""
    set_state(r, sid, fmt, twilio_status, error_code=error_code, final=True, error=error)


def final_state(r: redis.Redis, sid: str, fmt: str) -> dict | None:
    """The state Twilio's final status left (``status``, ``error_code``), or None."""
    state = get_state(r, sid, fmt)
    return state if state and state.get("final") else None


def get_state(r: redis.Redis, sid: str, fmt: str) -> dict | None:
    """The latest remembered state, or None."""
    raw = r.get(keys.state(sid, fmt))
    return json.loads(raw) if raw else None


def clear_state(r: redis.Redis, sid: str, fmt: str) -> None:
    """Forget state and queued marker once the recording is cached."""
    r.delete(keys.state(sid, fmt), keys.queued(sid, fmt))


# Taking the enqueue claim (keys.queued, SET NX with QUEUED_TTL_SECONDS) happens
# in worker.publish, in the same Redis command as the push: it only saves
# broker traffic under a storm of misses; the download lock is what
# guarantees a single download.


def release_enqueue(r: redis.Redis, sid: str, fmt: str) -> None:
    """Allow a new enqueue (after a task ends, or when sending failed)."""
    r.delete(keys.queued(sid, fmt))


def is_queued(r: redis.Redis, sid: str, fmt: str) -> bool:
    """True while a fetch for the recording is queued or retrying."""
    return bool(r.exists(keys.queued(sid, fmt)))


def is_downloading(r: redis.Redis, sid: str, fmt: str) -> bool:
    """True while some process holds the recording's download lock."""
    return bool(r.exists(keys.recording_lock(sid, fmt)))


def webhook_value(status: str, call_sid: str, account_sid: str | None = None, source: str | None = None) -> str:
    """The stored form of a recording-status callback (``account_sid``: a subaccount's; ``source``:
    what made the recording, RecordingSource)."""
    value = {"status": status, "call_sid": call_sid, "at": round(time.time(), 3)}
    extra = {name: given for name, given in (("account_sid", account_sid), ("source", source)) if given}
    return json.dumps({**value, **extra})


def remember_webhook(r: redis.Redis, recording_sid: str, status: str, call_sid: str, source: str | None = None) -> None:
    """Keep the last recording-status callback Twilio sent for a recording."""
    r.set(keys.webhook(recording_sid), webhook_value(status, call_sid, None, source), ex=keys.STATE_TTL_SECONDS)


def last_webhook(r: redis.Redis, recording_sid: str) -> dict | None:
    """The last recording-status callback remembered for a recording."""
    raw = r.get(keys.webhook(recording_sid))
    return json.loads(raw) if raw else None
