"""Thread-safe in-memory store of calls and recordings, per account."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from simulator.encryption import Sealed
from simulator.knobs import Knobs, apply_knobs

OrderKey = tuple[datetime, int]


def new_sid(prefix: str) -> str:
    """Return a Twilio-style SID: two-letter prefix plus 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class Call:
    """One call leg; a child leg (from ``<Dial>``) has ``parent_call_sid`` set."""

    sid: str
    account_sid: str
    parent_call_sid: str | None
    from_: str
    to: str
    direction: str
    status: str
    date_created: datetime
    duration: int
    seq: int


@dataclass
class Recording:
    """One recording with its fault knobs and the counters those knobs consume."""

    sid: str
    account_sid: str
    call_sid: str | None  # None for a conference's recording
    size: int
    source: str
    date_created: datetime
    duration: int
    seq: int
    knobs: Knobs
    conference_sid: str | None = None  # a conference's recording (Source Conference / StartConferenceRecordingAPI)
    channels: int = 2  # as recorded: calls in dual channel, conferences mono
    sealed: Sealed | None = None  # encrypted (Voice Recording Encryption): served as WAV only
    final_status: str | None = None  # "absent" or "failed": Twilio ends with no media
    error_code: int | None = None  # with final_status (16101 too short, 16102 silent)
    ready_at: float = 0.0  # time.monotonic() deadline from ready_in_ms
    ready_override: bool | None = None  # set by PATCH {"ready": ...}
    not_ready_served: int = 0
    failures_served: int = 0
    deleted: bool = False

    def is_ready(self, now: float | None = None) -> bool:
        """Return whether media is available (and the resource ``completed``)."""
        if self.ready_override is not None:
            return self.ready_override
        now = time.monotonic() if now is None else now
        return self.not_ready_served >= self.knobs.ready_after and now >= self.ready_at

    def control_state(self) -> dict[str, Any]:
        """Return knobs and counters as JSON for the control API."""
        return {
            "sid": self.sid,
            "call_sid": self.call_sid,
            "conference_sid": self.conference_sid,
            "channels": self.channels,
            "size": self.size,
            "ready": self.is_ready(),
            "ready_override": self.ready_override,
            "not_ready_served": self.not_ready_served,
            "failures_served": self.failures_served,
            "deleted": self.deleted,
            "final_status": self.final_status,
            "error_code": self.error_code,
            "knobs": self.knobs.to_dict(),
        }


class Outcome(Enum):
    """What a media GET should answer, decided atomically with its counters."""

    MISSING = "missing"
    NOT_READY = "not_ready"
    FAIL = "fail"
    REDIRECT = "redirect"
    SERVE = "serve"


class Store:
    """All simulated calls and recordings; every method is safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Call] = {}
        self._recordings: dict[str, Recording] = {}
        self._seq = 0

    def reset(self) -> None:
        """Forget every call and recording."""
        with self._lock:
            self._calls.clear()
            self._recordings.clear()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add_call(self, account_sid: str, date_created: datetime, **fields: Any) -> Call:
        """Create a call; ``fields`` are the remaining :class:`Call` attributes."""
        with self._lock:
            call = Call(
                sid=new_sid("CA"),
                account_sid=account_sid,
                date_created=date_created,
                seq=self._next_seq(),
                **fields,
            )
            self._calls[call.sid] = call
            return call

    def add_recording(
        self,
        call: Call,
        *,
        size: int,
        duration: int,
        source: str,
        knobs: Knobs,
        final_status: str | None = None,
        error_code: int | None = None,
        conference_sid: str | None = None,
        channels: int = 2,
        sealed: Sealed | None = None,
    ) -> Recording:
        """Create a recording filed under ``call``, or under ``conference_sid``
        (with no call, as Twilio files a conference's), and return a snapshot of it."""
        with self._lock:
            rec = Recording(
                final_status=final_status,
                error_code=error_code,
                conference_sid=conference_sid,
                channels=channels,
                sealed=sealed,
                sid=new_sid("RE"),
                account_sid=call.account_sid,
                call_sid=None if conference_sid else call.sid,
                size=size,
                source=source,
                date_created=call.date_created,
                duration=duration,
                seq=self._next_seq(),
                knobs=knobs,
                ready_at=time.monotonic() + knobs.ready_in_ms / 1000,
            )
            self._recordings[rec.sid] = rec
            return dataclasses.replace(rec)

    def call(self, account_sid: str, sid: str) -> Call | None:
        """Return the call, or None if the account has no such call."""
        with self._lock:
            call = self._calls.get(sid)
            return call if call and call.account_sid == account_sid else None

    def recording(self, account_sid: str, sid: str, *, include_deleted: bool = False) -> Recording | None:
        """Return a snapshot of the recording, or None if absent or deleted."""
        with self._lock:
            rec = self._find(account_sid, sid, include_deleted)
            return dataclasses.replace(rec) if rec else None

    def _find(self, account_sid: str | None, sid: str, include_deleted: bool) -> Recording | None:
        rec = self._recordings.get(sid)
        if rec is None or (account_sid is not None and rec.account_sid != account_sid):
            return None
        return rec if include_deleted or not rec.deleted else None

    def recordings(
        self,
        account_sid: str,
        *,
        call_sid: str | None = None,
        conference_sid: str | None = None,
        include_deleted: bool = False,
    ) -> list[Recording]:
        """Return matching recording snapshots, newest first."""
        with self._lock:
            found = [
                dataclasses.replace(rec)
                for rec in self._recordings.values()
                if rec.account_sid == account_sid
                and (include_deleted or not rec.deleted)
                and (call_sid is None or rec.call_sid == call_sid)
                and (conference_sid is None or rec.conference_sid == conference_sid)
            ]
        return sorted(found, key=order_key, reverse=True)

    def calls(self, account_sid: str, *, parent_call_sid: str | None = None, status: str | None = None) -> list[Call]:
        """Return matching calls, newest first."""
        with self._lock:
            found = [
                call
                for call in self._calls.values()
                if call.account_sid == account_sid
                and (parent_call_sid is None or call.parent_call_sid == parent_call_sid)
                and (status is None or call.status == status)
            ]
        return sorted(found, key=order_key, reverse=True)

    def order_key_of(self, sid: str) -> OrderKey | None:
        """Return the list-ordering key of any call or recording (deleted included)."""
        with self._lock:
            item = self._calls.get(sid) or self._recordings.get(sid)
            return order_key(item) if item else None

    def delete_recording(self, account_sid: str, sid: str) -> bool:
        """Soft-delete a recording (Twilio keeps metadata); return False if absent."""
        with self._lock:
            rec = self._find(account_sid, sid, include_deleted=False)
            if rec is not None:
                rec.deleted = True
            return rec is not None

    def update_recording(self, sid: str, changes: Mapping[str, Any]) -> Recording | None:
        """Apply control-API changes (knobs, ``ready``) to a recording (raises ValueError)."""
        with self._lock:
            rec = self._find(None, sid, include_deleted=True)
            if rec is None:
                return None
            # Validate everything before mutating, so a bad PATCH changes nothing.
            ready = changes.get("ready", rec.ready_override)
            if ready is not None and not isinstance(ready, bool):
                raise ValueError("ready must be true, false or null")
            knobs = apply_knobs(rec.knobs, changes)
            rec.ready_override = ready
            if "ready_in_ms" in changes:
                rec.ready_at = time.monotonic() + knobs.ready_in_ms / 1000
            if "ready_after" in changes:
                rec.not_ready_served = 0  # count the new allowance from now
            if "fail_first" in changes:
                rec.failures_served = 0
            rec.knobs = knobs
            return dataclasses.replace(rec)

    def media_turn(self, account_sid: str, sid: str) -> tuple[Outcome, Recording | None]:
        """Decide how to answer one media GET, consuming 404/500 allowances."""
        with self._lock:
            rec = self._find(account_sid, sid, include_deleted=False)
            if rec is None or rec.final_status:  # absent or failed: Twilio never has media
                return Outcome.MISSING, None
            if not rec.is_ready():
                rec.not_ready_served += 1
                outcome = Outcome.NOT_READY
            elif rec.failures_served < rec.knobs.fail_first:
                rec.failures_served += 1
                outcome = Outcome.FAIL
            elif rec.knobs.redirect_to:
                outcome = Outcome.REDIRECT
            else:
                outcome = Outcome.SERVE
            return outcome, dataclasses.replace(rec)


def order_key(item: Call | Recording) -> OrderKey:
    """Return the key Twilio lists sort by: creation time, then creation order."""
    return (item.date_created, item.seq)
