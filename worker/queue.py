"""Sending tasks by name, so the web tier never imports task code."""

from __future__ import annotations

from . import metrics
from .publish import FastPublisher


def enqueue_fetch(
    publisher: FastPublisher,
    sid: str,
    fmt: str,
    reason: str,
    call_sid: str | None = None,
    recorded_at: str | None = None,
    webhook_status: str | None = None,
    account_sid: str | None = None,
    source: str | None = None,
) -> bool:
    """Queue a fetch of a RecordingSid, CallSid or ConferenceSid unless one was queued just now.

    ``call_sid`` (with a RecordingSid): what the recording is filed under, its
    call or its conference; ``account_sid``: the subaccount it belongs to.

    Returns True when a task was sent. One Redis command (worker.publish):
    remember the callback (``webhook_status``), take the enqueue claim, push
    the task. The web tier never waits for the download.
    """
    if sid.startswith("RE"):
        name, args = "recordings.fetch", [sid, fmt, call_sid, recorded_at]
        if account_sid:  # a subaccount's recording: fetched with its credentials
            args.append(account_sid)
    else:  # a CallSid or a ConferenceSid: its latest recording
        name, args = "recordings.fetch_call", [sid, fmt]
    webhook = (webhook_status, call_sid or "", account_sid, source) if webhook_status else None
    if not publisher.claim_and_push(sid, fmt, name, args, webhook):
        return False
    # No log line here: each caller logs its own event with enqueued=…
    # (one line per event, and a second line per webhook costs CPU on the hot path).
    metrics.ENQUEUED.labels(reason).inc()
    return True


def enqueue_peaks(publisher: FastPublisher, recording_sid: str, fmt: str) -> bool:
    """Queue the peaks of a cached recording unless queued just now (players poll their peaks URL)."""
    return publisher.claim_and_push(recording_sid, "peaks", "recordings.peaks", [recording_sid, fmt], None)


def enqueue_leg(publisher: FastPublisher, child_sid: str, parent_sid: str, fmt: str) -> None:
    """Queue the durable recording of a child leg (the worker owns the volume)."""
    publisher.push("recordings.record_leg", [child_sid, parent_sid, fmt])
