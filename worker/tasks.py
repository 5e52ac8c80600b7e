"""Celery tasks: each unpacks its arguments, calls one domain function and
translates the outcome (``worker.outcomes``) into Celery's retry or return."""

from __future__ import annotations

from collections.abc import Callable

from celery import Task, shared_task

from . import accounts, calls, fetch, outcomes, resolve, resources, waveforms
from .maintenance import evict, playlog, reconcile, relayout, retention


def _settled(task: Task, sid: str, fmt: str, work: Callable[[], dict]) -> dict:
    """Run ``work``; on a fetch's failure, retry, finish or fail as ``outcomes.settle`` says.

    The retries that waited for Twilio's processing travel in the task's
    ``waits`` keyword, so that ``settle`` can leave them out of the budget.
    """
    res = resources.current()
    waits = int((task.request.kwargs or {}).get("waits", 0))
    try:
        return work()
    except outcomes.HANDLED as exc:
        outcome = outcomes.settle(exc, task.request.retries, sid, fmt, res.settings, res.redis, waits)
        if isinstance(outcome, outcomes.Retry):
            kwargs = {**(task.request.kwargs or {}), "waits": waits + outcome.waited}
            raise task.retry(
                exc=exc, countdown=outcome.countdown, max_retries=outcome.max_retries, kwargs=kwargs
            ) from None
        if isinstance(outcome, outcomes.Finish):
            return outcome.result
        raise


# max_retries=None on the task: Celery's retry(max_retries=None) falls back to
# the task's own limit (3 by default), and outcomes' Retry(max_retries=None)
# (a busy lock, Twilio still processing) means no limit.
@shared_task(bind=True, name="recordings.fetch", max_retries=None)
def fetch_recording_task(
    self: Task,
    recording_sid: str,
    fmt: str,
    call_sid: str | None = None,
    recorded_at: str | None = None,
    account_sid: str | None = None,
    waits: int = 0,
) -> dict:
    """Download a recording by RecordingSid (from a webhook or a playback miss; a subaccount's with its keys)."""
    res = resources.current()

    def work() -> dict:
        settings = accounts.settings_for(res.settings, res.redis, res.twilio, account_sid)
        outcome = fetch.fetch_recording(
            recording_sid, fmt, settings, res.redis, res.session, call_sid, recorded_at, res.tier
        )
        _peaks_after(res, outcome, fmt)
        return outcome.as_dict(recording_sid)

    return _settled(self, recording_sid, fmt, work)


@shared_task(bind=True, name="recordings.fetch_call", max_retries=None)
def fetch_call_task(self: Task, call_sid: str, fmt: str, waits: int = 0) -> dict:
    """Resolve a CallSid (parent or child leg) or a ConferenceSid to its recording and fetch it."""
    res = resources.current()

    def work() -> dict:
        outcome = resolve.fetch_call(call_sid, fmt, res.settings, res.redis, res.session, res.twilio, res.tier)
        _peaks_after(res, outcome, fmt)
        return outcome.as_dict(call_sid)

    return _settled(self, call_sid, fmt, work)


def _peaks_after(res: resources.Resources, outcome: fetch.FetchOutcome, fmt: str) -> None:
    """A new recording on the volume gets its peaks in a task of their own: playable first."""
    if outcome.result == "downloaded" and res.tier.indexed:
        res.publisher.push("recordings.peaks", [outcome.recording_sid, fmt])


@shared_task(name="recordings.peaks")
def peaks_task(recording_sid: str, fmt: str) -> dict:
    """Waveform peaks, duration and talk time of a cached recording (after its download, or a play of its peaks)."""
    res = resources.current()
    return waveforms.make(res.settings.recordings_dir, recording_sid, fmt).as_dict()


@shared_task(name="accounts.sync")
def sync_accounts_task() -> dict:
    """Refresh the subaccounts' auth tokens from Twilio (periodic, and for a webhook of an unknown account)."""
    res = resources.current()
    return accounts.sync(res.settings, res.redis, res.twilio).as_dict()


@shared_task(name="recordings.record_leg")
def record_leg_task(child_sid: str, parent_sid: str, fmt: str) -> dict:
    """Keep a child leg's parent on the volume and link it if already cached."""
    linked = calls.record_leg(resources.current().settings, child_sid, parent_sid, fmt)
    return {"child": child_sid, "parent": parent_sid, "linked": linked}


@shared_task(name="recordings.reconcile")
def reconcile_task() -> dict:
    """Re-enqueue what the volume is missing (periodic, from Celery beat)."""
    res = resources.current()
    return reconcile.reconcile(res.settings, res.redis, res.twilio, res.publisher, res.tier).as_dict()


@shared_task(name="maintenance.migrate_layout")
def migrate_layout_task() -> dict:
    """Move a flat volume into its fan-out folders, in place (until done; a new volume's first run marks it)."""
    res = resources.current()
    report = relayout.migrate(res.settings, res.redis)
    return report.as_dict() if report else {"skipped": "another process is migrating"}


@shared_task(name="maintenance.ingest_playlog")
def ingest_playlog_task() -> dict:
    """Count nginx's hits and stamp last-played times (periodic)."""
    res = resources.current()
    return playlog.ingest(res.settings, res.redis).as_dict()


@shared_task(name="maintenance.evict")
def evict_task() -> dict:
    """Stay within CACHE_MAX_BYTES, least recently played first (periodic)."""
    res = resources.current()
    return evict.evict_played(res.settings, res.redis).as_dict()


@shared_task(name="maintenance.index_volume")
def index_volume_task() -> dict:
    """Scan the volume into an index Redis lost, at a bounded rate (periodic; nothing when it has one)."""
    res = resources.current()
    report = evict.rebuild_index(res.settings, res.redis)
    return {"rebuilt": report is not None, **(vars(report) if report else {})}


@shared_task(name="maintenance.delete_from_twilio")
def delete_from_twilio_task() -> dict:
    """Delete Twilio's copy of verified recordings (opt-in, periodic)."""
    res = resources.current()
    return retention.delete_verified(res.settings, res.redis, res.session, res.twilio, tier=res.tier).as_dict()
