"""Every Redis key the service uses, spelled here and nowhere else.

Redis holds only hints (what is queued, in flight, failed, announced) and
counters; the volume is the source of truth, so losing these keys loses no
recording. Per-recording keys end in ``{sid}.{fmt}``.
"""

from __future__ import annotations

# The Celery queue: kombu's Redis transport keeps it as a list of this name.
QUEUE = "recordings"

WEBHOOK_PATTERN = "rc:webhook:RE*"
RECORDING_LOCK_PATTERN = "recording:*"
PLAYLOG_POSITION = "rc:playlog:position"
PLAYBACK_HITS = "rc:metrics:playback_hits"
PLAYBACK_HIT_BYTES = "rc:metrics:playback_hit_bytes"
# The volume's index (worker.volume_index): last use by "{sid}.{fmt}", sizes, totals, and a
# marker set once a scan of the volume completed it.
INDEX_BY_USE = "rc:index:by-use"
INDEX_SIZES = "rc:index:sizes"
INDEX_TOTALS = "rc:index:totals"
INDEX_COMPLETE = "rc:index:complete"
# Downloads in flight (worker.inflight): lease expiry by "{sid}.{fmt}", and the task that redoes each.
INFLIGHT = "rc:inflight"
INFLIGHT_WORK = "rc:inflight:work"

STATE_TTL_SECONDS = 7 * 24 * 3600
NOT_FOUND_TTL_SECONDS = 3600
QUEUED_TTL_SECONDS = 120


def _suffix(sid: str, fmt: str) -> str:
    return f"{sid}.{fmt}"


def recording_lock(sid: str, fmt: str) -> str:
    """The redis-py Lock guarding one recording's download."""
    return f"recording:{_suffix(sid, fmt)}"


def maintenance_lock(job: str) -> str:
    """The lock that keeps one periodic job (evict, retention, playlog) single."""
    return f"maintenance:{job}"


def maintenance_claim(job: str) -> str:
    """Taken by the worker that sends a due maintenance job (worker.maintenance.due), for its period."""
    return f"maintenance-claim:{job}"


def state(sid: str, fmt: str) -> str:
    """Latest remembered outcome of a fetch (failed, not_found)."""
    return f"rc:state:{_suffix(sid, fmt)}"


def queued(sid: str, fmt: str) -> str:
    """The enqueue claim: a fetch is queued or retrying."""
    return f"rc:queued:{_suffix(sid, fmt)}"


def twilio_slots(account_sid: str) -> str:
    """The account's Twilio request slots in flight (worker.twilio_slots): a sorted set of leases."""
    return f"rc:twilio-slots:{account_sid}"


def subaccounts() -> str:
    """The main account's subaccounts: a hash of AccountSid -> auth token (worker.accounts)."""
    return "rc:subaccounts"


def subaccounts_sync_claim() -> str:
    """Taken by the webhook that asks for a sync of the subaccounts (worker.accounts.claim_sync)."""
    return "rc:subaccounts:sync-claim"


def webhook(recording_sid: str) -> str:
    """The last recording-status callback Twilio sent for a recording."""
    return f"rc:webhook:{recording_sid}"


def sid_of_webhook(key: bytes | str) -> str:
    """The RecordingSid a ``webhook`` key names."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.rsplit(":", 1)[1]
