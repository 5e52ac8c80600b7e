"""Bench-local what-if copies of the webhook: lower bounds for row 3 without editing web/.

gunicorn loads them as factories, e.g. ``'bench.whatif_app:build("validate-only")'``.
Each is the real app (``web.create_app``) with the recording-status view
replaced by one that does less than the service must:

``read-body``
    Reads the request body and answers 204: what receiving a webhook costs.

``validate-only``
    The service's own check (``_require_twilio``: form parsing, twilio's
    ``RequestValidator``, AccountSid) and 204. Nothing is queued, nothing is
    logged, so no webhook design that validates can be cheaper.

``validate-push``
    ``validate-only`` plus one LPUSH of a task-sized message through redis-py
    (the broker floor's): no SID checks, no dedup claim, no message building,
    no log line, no metric. The least a webhook that validates and answers
    only once its task is in Redis can do; row 3 runs it for an info line.

``validate-send-task``
    The issue's "naive anchor": ``validate-only`` plus ``Celery.send_task``
    of the fetch (kombu's publish path), as a first version would write it.
    Row 3 of ``make bench`` also runs it, for an info line.

``validate-spool``
    ``validate-only`` plus the SID and status checks and one ``write`` of the
    task to a local append-only file (``WHATIF_SPOOL``), with no log line and
    no metric: the optimistic bound of a design that answers before Redis has
    the task and forwards it later. The forwarder such a design needs (it
    would share the same cores) is not running, so the bound flatters it.

``spool-design``
    The service's own view, unchanged, with its one Redis call replaced by a
    write of the task to the spool file: the request path of a design that
    answers before Redis has the task. ``bench/whatif_forwarder.py`` runs
    beside it and moves the spool into Redis (claim + push, pipelined), so
    the pair does all the work the service does, on the same cores.

Earlier variants (a pipelined ``send_task`` path and kombu's per-publish
client, both replaced by worker/publish.py) are in this file's history.
"""

from __future__ import annotations

import os
from functools import cache

from flask import Flask, abort, request

from bench.anchor_apps import push_floor_message
from web import create_app, services, twilio_hooks
from web.twilio_hooks import RECORDING_STATUSES, _require_twilio
from worker import metrics, queue
from worker.runtime import settings_or_exit
from worker.sids import require_sid

VARIANTS = ("read-body", "validate-only", "validate-push", "validate-send-task", "validate-spool", "spool-design")


def read_body() -> tuple[str, int]:
    request.get_data(cache=False)
    return "", 204


def validate_only() -> tuple[str, int]:
    _require_twilio("recording")
    return "", 204


def validate_push() -> tuple[str, int]:
    _require_twilio("recording")
    push_floor_message()
    return "", 204


def validate_send_task() -> tuple[str, int]:
    _require_twilio("recording")
    form = request.form
    args = [form.get("RecordingSid"), services().settings.recording_format, form.get("CallSid"), None]
    services().celery.send_task("recordings.fetch", args=args)
    return "", 204


@cache
def _spool() -> int:
    return os.open(os.environ["WHATIF_SPOOL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def validate_spool() -> tuple[str, int]:
    _require_twilio("recording")
    form = request.form
    recording_sid = require_sid(form.get("RecordingSid"), "RE", "RecordingSid")
    call_sid = require_sid(form.get("CallSid"), "CA", "CallSid")
    recording_status = form.get("RecordingStatus")
    if recording_status not in RECORDING_STATUSES:
        abort(400)
    os.write(_spool(), f"{recording_sid}\t{call_sid}\t{recording_status}\n".encode())
    return "", 204


class _SpoolQueue:
    """Stands in for ``worker.queue`` in the service's views: a spool line instead of an EVALSHA.

    ``enqueued`` is always True: in a spool design the forwarder takes the
    claim later, so the view cannot know whether the task is a duplicate.
    """

    enqueue_leg = staticmethod(queue.enqueue_leg)

    @staticmethod
    def enqueue_fetch(celery, r, sid, fmt, reason, call_sid=None, recorded_at=None, webhook_status=None) -> bool:
        line = "\t".join((sid, fmt, call_sid or "", recorded_at or "", webhook_status or ""))
        os.write(_spool(), f"{line}\n".encode())
        metrics.ENQUEUED.labels(reason).inc()
        return True


def build(variant: str) -> Flask:
    """The real app with its recording-status view replaced by ``variant``."""
    if variant == "spool-design":
        # Rebinds the view module's ``queue`` for the life of this bench-only
        # gunicorn process (which serves nothing else); no file in web/ changes.
        twilio_hooks.queue = _SpoolQueue
        return create_app(settings_or_exit(exit_code=4))
    views = {
        "read-body": read_body,
        "validate-only": validate_only,
        "validate-push": validate_push,
        "validate-send-task": validate_send_task,
        "validate-spool": validate_spool,
    }
    if variant not in views:
        raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    app = create_app(settings_or_exit(exit_code=4))
    app.view_functions["twilio.recording_status"] = views[variant]
    return app
